"""How far does blending two families go on MovieLens-100K? HSTU's scores blended with item-kNN's
or EASE's, the platform's way, with the weight chosen on validation as a team would choose it.

`python -m benchmarks.movielens_100k_blend --inter PATH` imports and splits the ratings as
`benchmarks.movielens_100k` does, trains HSTU (60 epochs, patience 10: the `project new` template)
and fits item-kNN and EASE with their defaults. A blend is `w * z(HSTU) + (1 - w) * z(other)`, each
model's scores standardised per position over the catalogue. The weight is the one of `WEIGHTS` that
best ranks each user's last training item (the validation item early stopping uses), with the other
family fitted without those items; the held-out film is then ranked with seen films masked
(`evaluation.scoring.model_ranks`, the evaluation asset's code) under the blend of that weight, the
other family refitted on everything. HSTU's weights were themselves chosen on that validation item,
so validation favours it a little. Every weight's figure on the evaluated split is kept beside it
for reference only. Results: `results/movielens_100k_blend.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

import pandas as pd
import torch

from benchmarks.movielens_100k import RESULTS, leave_last_out_split

WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 1.0)
OTHERS = ("itemknn", "ease")


class Blend(torch.nn.Module):
    """Two next-item models as one: their hidden states side by side, their standardised scores summed."""

    def __init__(self, parts: list[torch.nn.Module], weights: list[float]):
        super().__init__()
        self.parts, self.weights, self.config = parts, weights, parts[0].config
        self.sizes: list[int] = []

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        hidden = [part(inputs) for part in self.parts]
        self.sizes = [h.shape[-1] for h in hidden]
        return torch.cat(hidden, dim=-1)

    def item_scores(self, hidden: torch.Tensor) -> torch.Tensor:
        total = 0.0
        for part, weight, own in zip(self.parts, self.weights, torch.split(hidden, self.sizes, dim=-1), strict=True):
            scores = part.item_scores(own).float()
            scores[:, 0] = float("nan")  # padding takes no part in the standardisation
            spread = scores.nan_to_num(0.0).std(dim=1, keepdim=True) + 1e-9
            total = total + weight * ((scores - scores.nanmean(dim=1, keepdim=True)) / spread).nan_to_num(-1e9)
        return total


def without_last_item(sequences: pd.DataFrame) -> pd.DataFrame:
    """The sequences table early stopping validates on: each history of 3 or more items without its
    last item, which becomes the held-out one (`training.data.validation_split`'s rule)."""
    held = sequences["history_length"] >= 3
    history = [list(h[:-1]) if keep else list(h) for h, keep in zip(sequences["history"], held, strict=True)]
    holdout = [[h[-1]] if keep else [] for h, keep in zip(sequences["history"], held, strict=True)]
    return pd.DataFrame({
        "user_id": sequences["user_id"], "history": history, "holdout": holdout,
        "history_length": [len(h) for h in history], "holdout_length": [len(h) for h in holdout],
    })  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    from algo_platform.core.hyperparameters import TrainConfig
    from algo_platform.evaluation.scoring import (
        LoadedModel,
        load_model,
        metrics_from_ranks,
        model_ranks,
        popularity_ranks,
    )
    from algo_platform.training.artifacts import read_item_ids
    from algo_platform.training.data import holdout_windows, popularity_scores, read_sequences, seen_before_targets
    from algo_platform.training.runtime import Reporter
    from algo_platform.training.train import train

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inter", required=True, help="ml-100k.inter from RecBole's wheel")
    parser.add_argument("--out", default=str(RESULTS / "movielens_100k_blend.json"))
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        split = leave_last_out_split(Path(args.inter), folder)
        validation_path = f"{folder}/validation_sequences.parquet"
        without_last_item(split.sequences).to_parquet(validation_path)

        def fit(family: str, sequences_path: str, **settings) -> LoadedModel:
            config = TrainConfig(**{"model": family, "device": "cpu", **settings})
            result = train(config, sequences_path, split.vocabulary_path, f"{folder}/{family}-{len(settings)}-"
                           f"{Path(sequences_path).stem}", Reporter(None))  # fmt: skip
            return load_model(result["model_uri"])

        item_ids = read_item_ids(split.vocabulary_path)

        def ndcg_on(sequences_path: str):
            data = read_sequences(sequences_path)
            batch, seen = holdout_windows(data, TrainConfig.max_len), seen_before_targets(data, TrainConfig.max_len)

            def ndcg(parts: list[LoadedModel], weights: list[float]) -> float:
                blend = Blend([part.model for part in parts], weights) if len(parts) > 1 else parts[0].model
                with torch.no_grad():
                    ranks, _ = model_ranks(LoadedModel(blend, parts[0].item_ids, parts[0].device), batch.inputs,
                                           batch.targets, item_ids, seen=seen)  # fmt: skip
                return metrics_from_ranks(ranks)["ndcg@10"]

            popularity = popularity_ranks(popularity_scores(data.history, len(item_ids)), batch.targets, seen)
            return ndcg, metrics_from_ranks(popularity)["ndcg@10"]

        test_ndcg, popularity = ndcg_on(split.sequences_path)
        validation_ndcg, _ = ndcg_on(validation_path)
        hstu = fit("hstu", split.sequences_path, epochs=60, patience=10)
        rows = [{"scorer": "popularity", "ndcg@10": popularity}, {"scorer": "hstu", "ndcg@10": test_ndcg([hstu], [1])}]
        for other in OTHERS:
            full, without_validation = fit(other, split.sequences_path), fit(other, validation_path)
            rows.append({"scorer": other, "ndcg@10": test_ndcg([full], [1])})
            on_validation = {w: validation_ndcg([hstu, without_validation], [w, 1 - w]) for w in WEIGHTS}
            on_test = {w: test_ndcg([hstu, full], [w, 1 - w]) for w in WEIGHTS}
            chosen = max(WEIGHTS, key=lambda w: (on_validation[w], w))
            rows.append({"scorer": f"hstu + {other}, weight chosen on validation", "hstu_weight": chosen,
                         "ndcg@10": on_test[chosen], "validation_ndcg@10_per_weight": on_validation,
                         "test_ndcg@10_per_weight_reference_only": on_test})  # fmt: skip
    for row in rows:
        row["x_popularity"] = row["ndcg@10"] / popularity
        print(f"{row['scorer']:>48}  {row['ndcg@10']:.4f}  {row['x_popularity']:.2f}x  {row.get('hstu_weight', '')}")
    summary = {"date": dt.date.today().isoformat(), "weights_chosen_on": "each user's last training item",
               "rows": rows}  # fmt: skip
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
