"""Would blending two families close issue 42's gap? HSTU's scores blended with item-kNN's or EASE's
on MovieLens-100K, the platform's way.

`python -m benchmarks.movielens_100k_blend --inter PATH` imports and splits the ratings as
`benchmarks.movielens_100k` does, trains HSTU (60 epochs, patience 10: the `project new` template)
and fits item-kNN and EASE with their defaults, then ranks each held-out film with seen films
masked (`evaluation.scoring.model_ranks`, the evaluation asset's code) under each model alone and
under blends `w * z(HSTU) + (1 - w) * z(other)`, each model's scores standardised per position over
the catalogue. The weights are tried on the evaluated split itself: a feasibility check, not a
figure a model could claim. Results: `results/movielens_100k_blend.json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import tempfile
from pathlib import Path

import torch

from benchmarks.movielens_100k import RESULTS, leave_last_out_split

WEIGHTS = (0.3, 0.5, 0.7)


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
        sequences_path, vocabulary_path = split.sequences_path, split.vocabulary_path
        models = {}
        for family, settings in (("hstu", {"epochs": 60, "patience": 10}), ("itemknn", {}), ("ease", {})):
            config = TrainConfig(**{"model": family, "device": "cpu", **settings})
            result = train(config, sequences_path, vocabulary_path, f"{folder}/{family}", Reporter(None))
            models[family] = load_model(result["model_uri"])
        data, item_ids = read_sequences(sequences_path), read_item_ids(vocabulary_path)
        batch = holdout_windows(data, TrainConfig.max_len)
        seen = seen_before_targets(data, TrainConfig.max_len)

        def ndcg(loaded: LoadedModel) -> float:
            ranks, _ = model_ranks(loaded, batch.inputs, batch.targets, item_ids, seen=seen)
            return metrics_from_ranks(ranks)["ndcg@10"]

        popularity = popularity_ranks(popularity_scores(data.history, len(item_ids)), batch.targets, seen)
        figures = {"popularity": metrics_from_ranks(popularity)["ndcg@10"]}
        figures |= {family: ndcg(loaded) for family, loaded in models.items()}
        hstu = models["hstu"]
        for other in ("itemknn", "ease"):
            for weight in WEIGHTS:
                blend = Blend([hstu.model, models[other].model], [weight, 1 - weight])
                figures[f"{weight:g} hstu + {1 - weight:g} {other}"] = ndcg(
                    LoadedModel(blend, hstu.item_ids, hstu.device)
                )
    rows = [{"scorer": k, "ndcg@10": v, "x_popularity": v / figures["popularity"]} for k, v in figures.items()]
    for row in rows:
        print(f"{row['scorer']:>28}  {row['ndcg@10']:.4f}  {row['x_popularity']:.2f}x")
    summary = {"date": dt.date.today().isoformat(), "weights_chosen_on": "the evaluated split (feasibility only)",
               "rows": rows}  # fmt: skip
    Path(args.out).write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    main()
