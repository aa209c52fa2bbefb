"""Code location of this project: everything is declared in project.yaml beside this file."""

from algo_platform.definitions import load_project_definitions

defs = load_project_definitions(__file__)
