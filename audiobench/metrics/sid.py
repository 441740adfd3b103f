"""SID, speaker identification (the speaker study): is each generated face closest, in CLIP
ViT-L/14's space, to the prototype of its own speaker's reference frames? Accuracy in percent;
chance is 1 / (number of speakers)."""

from __future__ import annotations

from audiobench.errors import AudiobenchError
from audiobench.features import FeatureKind
from audiobench.metrics.plugin import Metric, MetricInputs, MetricResult, ScoreSettings, mean_result
from audiobench.metrics.scores import identification_accuracy

IMAGE = FeatureKind("clip_l14", "image")


class SID(Metric):
    name = "sid"
    label = "SID"
    description = "speaker identification accuracy against each label's reference frames"
    higher_is_better = True
    inputs = {"generated": (IMAGE,), "frames": (IMAGE,), "labels": ()}
    columns = ("sid_prediction", "sid_correct")
    score_column = "sid_correct"

    def compute(self, inputs: MetricInputs, settings: ScoreSettings) -> MetricResult:
        if inputs.labels is None:
            raise AudiobenchError("sid needs the samples' labels")
        labels = inputs.labels
        try:
            identified, correct = identification_accuracy(
                inputs.tensor("generated", IMAGE), labels, inputs.tensor("frames", IMAGE), labels
            )
        except ValueError as error:
            raise AudiobenchError(f"sid: {error}") from error
        config = {
            "image_role": IMAGE.role,
            "reference": "each label's prototype: the mean CLIP embedding of its evaluated "
            "samples' reference frames",
            "labels": len(set(labels)),
            "chance": 100.0 / len(set(labels)),
        }
        result = mean_result(correct, settings, config)
        result.per_sample = {"sid_prediction": identified, "sid_correct": correct}
        return result
