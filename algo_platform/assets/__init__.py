"""One module per stage of the data flow; each has a factory that builds the stage for a project
(`algo_platform.definitions` puts them together)."""
