"""Run encoders under the Keras backend named by KERAS_BACKEND (set before keras is imported) and save
their outputs, for the backend parity test. Usage: python backend_outputs.py jobs.json

Each job: config, checkpoint, family, with_mlm, inputs (npz with token_ids, segment_ids), output (npz of
the hidden states, the same with the explicit attention path, and MLM logits and probabilities with_mlm).
Also takes one training step on the first job's model, to show the backend can train it.
"""

import json
import sys

import keras
import numpy as np

from checkpoint_fixtures import explicit_attention, probe
from clue.models import build_transformer_model


def main(jobs_path):
    jobs = json.load(open(jobs_path))
    for n, job in enumerate(jobs):
        model = build_transformer_model(job["config"], job["checkpoint"], model=job["family"],
                                        with_mlm=job["with_mlm"])
        data = np.load(job["inputs"])
        inputs = [data["token_ids"], data["segment_ids"]]
        result = {k: keras.ops.convert_to_numpy(v) for k, v in probe(model)(inputs).items()}
        explicit = probe(explicit_attention(model))(inputs)   # after the fused run: same model, other path
        result["hidden_explicit"] = keras.ops.convert_to_numpy(explicit["hidden"])
        if n == 0:   # two SGD steps: gradients flow on this backend
            model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
            target = np.zeros(keras.ops.shape(model(inputs)))
            result["loss"] = np.array([model.train_on_batch(inputs, target) for _ in range(2)])
        np.savez(job["output"], backend=keras.backend.backend(), **result)


if __name__ == "__main__":
    main(sys.argv[1])
