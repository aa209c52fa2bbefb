"""Runs RecBole's SASRec on a `.inter` file and prints its test metrics as JSON: the reference
implementation beside the platform's (`benchmarks/recbole_reference.py` starts this script).

Runs in its own virtual environment, never the platform's: RecBole 1.2 needs numpy < 2, setuptools'
pkg_resources (through ray) and torch's weights-only loading turned off (it saves and reloads its
own checkpoints with pickled configs). Imports nothing of algo_platform.
"""

import json
import os
import sys
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")


def main() -> None:
    data_path, dataset, epochs, workdir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    config = Config(
        model="SASRec",
        dataset=dataset,
        config_dict={
            "data_path": data_path,
            "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
            # The platform's protocol: each user's last interaction by time is the test, the one
            # before validates; every item of the catalogue is ranked; seen items are masked.
            "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full"},
            "user_inter_num_interval": "[3,inf)",
            "train_neg_sample_args": None,
            "loss_type": "CE",
            "metrics": ["NDCG", "Hit"],
            "topk": [10],
            "valid_metric": "NDCG@10",
            "epochs": epochs,
            "stopping_step": 5,
            "device": "cpu",
            "use_gpu": False,
            "show_progress": False,
            "checkpoint_dir": os.path.join(workdir, "saved"),
            "seed": 0,
        },
    )
    init_seed(config["seed"], config["reproducibility"])
    dataset_object = create_dataset(config)
    train, valid, test = data_preparation(config, dataset_object)
    model = SASRec(config, train.dataset).to(config["device"])
    trainer = Trainer(config, model)
    started = time.perf_counter()
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    seconds = time.perf_counter() - started
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    epochs_run = len(trainer.train_loss_dict)
    print(
        json.dumps(
            {
                "ndcg@10": float(result["ndcg@10"]),
                "hr@10": float(result["hit@10"]),
                "best_valid_ndcg@10": float(best_valid),
                "epochs_run": epochs_run,
                # Training and the validation after each epoch, as the platform's figure counts it.
                "seconds_per_epoch": seconds / max(epochs_run, 1),
                "users": int(dataset_object.user_num - 1),
                "items": int(dataset_object.item_num - 1),
            }
        )
    )


if __name__ == "__main__":
    main()
