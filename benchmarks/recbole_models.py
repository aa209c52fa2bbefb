"""Runs one RecBole 1.2.1 model (Pop, ItemKNN, EASE, SASRec, GRU4Rec, ...) on a `.inter` file with
the leave-one-out protocol and prints its test metrics as one JSON line.

    python recbole_models.py DATA_PATH DATASET MODEL MAX_EPOCHS WORKDIR [--dump-split FILE] [--no-seq-mask]

DATA_PATH holds DATASET/DATASET.inter (user_id:token, item_id:token, timestamp:float).

Protocol: each user's last interaction by time is the test, the one before validates (eval_args
split LS valid_and_test, order TO), every item of the catalogue is ranked (mode full), NDCG@10 and
Hit@10, NDCG@10 picks the best epoch. Hyper-parameters are RecBole's defaults for each model; only
the epochs are capped (1 for Pop and the closed-form models) and SASRec/GRU4Rec train with CE and
no negative sampling (their defaults; RecBole refuses CE with negative sampling).

Masking: RecBole masks the user's earlier items in full ranking for general models (Pop, ItemKNN,
EASE) but NOT for sequential ones (FullSortEvalDataLoader passes history_index=None for them). So
that every model is scored the same way (and the platform's way, `training.exclude_seen`), the
trainer's full-sort step is patched for sequential models to mask every item the user interacted
with before the target (not only the last MAX_ITEM_LIST_LENGTH), in validation and test alike;
`--no-seq-mask` gives RecBole's native unmasked behaviour. The unmasked test figures of the same
best model are reported beside the masked ones.

Runs in its own virtual environment: RecBole 1.2 needs numpy < 2, setuptools < 81 (pkg_resources,
through ray) and torch's weights-only loading turned off (it reloads its own pickled checkpoints).
Imports nothing of algo_platform.
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")

CLOSED_FORM_OR_COUNTING = {"Pop", "ItemKNN", "EASE", "ADMMSLIM", "SLIMElastic", "NCEPLRec"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("data_path")
    parser.add_argument("dataset")
    parser.add_argument("model")
    parser.add_argument("epochs", type=int)
    parser.add_argument("workdir")
    parser.add_argument("--dump-split", help="write each user's valid and test item (tokens) as JSON")
    parser.add_argument(
        "--set", action="append", default=[], help="config override key=JSON, e.g. train_neg_sample_args=null"
    )
    parser.add_argument(
        "--max-fit-minutes",
        type=float,
        default=None,
        help="stop after the epoch at which training has run this long (an epoch cap that fits the time)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    parser.add_argument("--no-seq-mask", action="store_true", help="RecBole's native: no masking for sequential models")
    args = parser.parse_args()
    wall_start = time.perf_counter()

    import numpy as np
    import recbole.trainer.trainer as trainer_module
    import torch
    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.utils import ModelType, get_model, get_trainer, init_seed

    if args.threads:
        torch.set_num_threads(args.threads)
    capped = {"by_time": False}
    native_stopping = trainer_module.early_stopping

    def early_stopping_or_time(*a, **k):
        best, cur_step, stop, update = native_stopping(*a, **k)
        if args.max_fit_minutes is not None and time.perf_counter() - started >= 60 * args.max_fit_minutes and not stop:
            capped["by_time"] = stop = True
        return best, cur_step, stop, update

    trainer_module.early_stopping = early_stopping_or_time

    config_dict = {
        "data_path": args.data_path,
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
        "epochs": 1 if args.model in CLOSED_FORM_OR_COUNTING else args.epochs,
        "stopping_step": 10,
        "device": "cpu",
        "use_gpu": False,
        "show_progress": False,
        "checkpoint_dir": os.path.join(args.workdir, "saved"),
        "log_wandb": False,
        "metric_decimal_place": 6,  # display only (RecBole rounds its results to 4 places by default)
    }
    if args.model in ("SASRec", "GRU4Rec"):
        config_dict.update({"loss_type": "CE", "train_neg_sample_args": None, "MAX_ITEM_LIST_LENGTH": 50})
    overrides = {k: json.loads(v) for k, v in (item.split("=", 1) for item in args.set)}
    config_dict.update(overrides)
    config = Config(model=args.model, dataset=args.dataset, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    sequential = config["MODEL_TYPE"] == ModelType.SEQUENTIAL

    # Each user's items in RecBole's own order (stable sort by time, as `build` sorts, then by user).
    uid_field, iid_field, time_field = dataset.uid_field, dataset.iid_field, dataset.time_field
    users = dataset.inter_feat[uid_field].numpy()
    items = dataset.inter_feat[iid_field].numpy()
    times = dataset.inter_feat[time_field].numpy()
    by_time = np.argsort(times, kind="stable")
    order = by_time[np.argsort(users[by_time], kind="stable")]
    sequence_of = {}
    for u, i in zip(users[order], items[order], strict=False):
        sequence_of.setdefault(int(u), []).append(int(i))
    position_of = {u: {i: p for p, i in enumerate(s)} for u, s in sequence_of.items()}

    model = get_model(config["model"])(config, train._dataset).to(config["device"])
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)

    mask = {"on": sequential and not args.no_seq_mask}
    native_eval = trainer._full_sort_batch_eval

    def masked_eval(batched_data):
        interaction, scores, positive_u, positive_i = native_eval(batched_data)
        if mask["on"]:
            rows, cols = [], []
            for row, (u, target) in enumerate(zip(interaction[uid_field].tolist(), positive_i.tolist(), strict=False)):
                before = sequence_of[u][: position_of[u][target]]  # every item the user had before the target
                rows.extend([row] * len(before))
                cols.extend(before)
            scores[torch.tensor(rows, dtype=torch.long), torch.tensor(cols, dtype=torch.long)] = -np.inf
        return interaction, scores, positive_u, positive_i

    trainer._full_sort_batch_eval = masked_eval
    valid_scores = []
    native_valid = trainer._valid_epoch

    def recorded_valid(*a, **k):
        score, result = native_valid(*a, **k)
        valid_scores.append(float(score))
        print(
            f"epoch {len(valid_scores)}: valid ndcg@10 {float(score):.4f}, {time.perf_counter() - started:.0f} s",
            file=sys.stderr,
            flush=True,
        )
        return score, result

    trainer._valid_epoch = recorded_valid

    started = time.perf_counter()
    best_valid, _ = trainer.fit(train, valid, saved=True, show_progress=False)
    fit_seconds = time.perf_counter() - started
    result = trainer.evaluate(test, load_best_model=True, show_progress=False)
    extra = {}
    if sequential and not args.no_seq_mask:
        mask["on"] = False
        native = trainer.evaluate(test, load_best_model=False, show_progress=False)
        extra = {"unmasked_ndcg@10": float(native["ndcg@10"]), "unmasked_hr@10": float(native["hit@10"])}
    epochs_run = len(trainer.train_loss_dict)

    if args.dump_split:

        def targets(loader):
            feat = loader._dataset.inter_feat
            u = dataset.id2token(uid_field, feat[uid_field].numpy())
            i = dataset.id2token(iid_field, feat[iid_field].numpy())
            return {str(a): str(b) for a, b in zip(u, i, strict=False)}

        with open(args.dump_split, "w") as out:
            json.dump({"valid": targets(valid), "test": targets(test)}, out)

    print(
        json.dumps(
            {
                "model": args.model,
                "overrides": overrides,
                "dataset": args.dataset,
                "ndcg@10": float(result["ndcg@10"]),
                "hr@10": float(result["hit@10"]),
                "best_valid_ndcg@10": float(best_valid),
                # 1-based; RecBole keeps the later epoch on a tie (early_stopping: value >= best).
                "best_epoch": (len(valid_scores) - valid_scores[::-1].index(max(valid_scores)))
                if valid_scores
                else None,
                "valid_ndcg_per_epoch": [round(v, 4) for v in valid_scores],
                "epochs_run": epochs_run,
                "max_epochs": int(config["epochs"]),
                "stopped_by": "time cap"
                if capped["by_time"]
                else ("early stopping" if epochs_run < int(config["epochs"]) else "max epochs"),
                "history_masked": not sequential or not args.no_seq_mask,
                **extra,
                # Training plus the validation after each epoch.
                "fit_seconds": fit_seconds,
                "seconds_per_epoch": fit_seconds / max(epochs_run, 1),
                "wall_seconds": time.perf_counter() - wall_start,
                "users": int(dataset.user_num - 1),
                "items": int(dataset.item_num - 1),
                "test_targets": int(len(test._dataset.inter_feat)),
                "seed": int(config["seed"]),
                "torch_threads": torch.get_num_threads(),
            }
        ),
        flush=True,
    )


if __name__ == "__main__":
    main()
