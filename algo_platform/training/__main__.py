from algo_platform.training.cli import main

if __name__ == "__main__":
    main()
