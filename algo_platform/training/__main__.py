from algo_platform.training.train import main

if __name__ == "__main__":
    main()
