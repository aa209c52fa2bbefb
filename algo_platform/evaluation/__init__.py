"""How a model is judged and used: ranks and metrics against baselines, the HTML report, the
promotion rule, and the batch recommender the champion serves through MLflow."""
