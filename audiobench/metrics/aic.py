"""AIC, audio-image content (Table 1): does an ImageNet-21k classifier's top-1 class name for a
generated image mean the sample's label? Equal names (ignoring case) or a CLIP ViT-L/14 text
cosine above 0.75 count as agreement."""

from __future__ import annotations

import torch

from audiobench.errors import AudiobenchError
from audiobench.features import FeatureKind
from audiobench.metrics.plugin import Metric, MetricInputs, MetricResult, ScoreSettings, mean_result
from audiobench.metrics.scores import agreement_rate
from audiobench.models.classifier import ARCHITECTURE, class_names

TOP1 = FeatureKind("classifier", "top1")
TEXT = FeatureKind("clip_l14", "text")
THRESHOLD = 0.75


class AIC(Metric):
    name = "aic"
    label = "AIC"
    description = "audio-image content: classifier top-1 name matches the label (CLIP text > 0.75)"
    higher_is_better = True
    inputs = {"generated": (TOP1,), "labels": (TEXT,)}
    columns = ("aic_prediction", "aic_agree")
    score_column = "aic_agree"
    paper_column = 0

    def compute(self, inputs: MetricInputs, settings: ScoreSettings) -> MetricResult:
        if inputs.labels is None:
            raise AudiobenchError("aic needs the samples' labels")
        top1 = inputs.features["generated", TOP1][:, 0].astype(int)
        predicted = [class_names()[index] for index in top1]
        _, agree = agreement_rate(
            predicted,
            inputs.labels,
            lambda texts: torch.from_numpy(inputs.embed_texts(TEXT, texts)),
            THRESHOLD,
        )
        config = {
            "classifier": ARCHITECTURE,
            "text_role": TEXT.role,
            "threshold": THRESHOLD,
            "rule": "names equal (case-insensitive) or text cosine > threshold",
        }
        result = mean_result(agree, settings, config)
        result.per_sample = {"aic_prediction": predicted, "aic_agree": agree}
        return result
