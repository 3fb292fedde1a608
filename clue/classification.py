"""Text and text-pair classification (afqmc, tnews, iflytek, cmnli, ocnli, cluewsc2020, csl): records as
examples (token_ids, segment_ids, label index), as the bert4keras CLUE baselines encode them, for
``clue.batching.pad_inputs`` and ``clue.heads.classifier``."""

import numpy as np


def encode(tokenizer, records, frame, labels, maxlen, second_segment=0):
    """One example per record: ``frame(record)`` gives its text, or its pair of texts, encoded
    [CLS] a [SEP] (b [SEP]) in at most ``maxlen`` tokens; the label index in ``labels`` (0 for an
    unlabelled test record). The second text of a pair gets segment id ``second_segment`` (0 as the
    baselines: the pair reads as one sequence)."""
    texts = [frame(r) for r in records]
    if len({len(t) for t in texts}) > 1:
        raise ValueError("frame() must give every record the same number of texts")
    firsts = [t[0] for t in texts]
    seconds = [t[1] for t in texts] if texts and len(texts[0]) == 2 else None
    features = tokenizer.encode_batch(firsts, seconds, maxlen=maxlen, arrays=True)
    if seconds is not None and second_segment == 0:
        zeros = np.zeros(max(len(ids) for ids, _ in features), np.int32)
        zeros.flags.writeable = False
        features = [(ids, zeros[:len(ids)]) for ids, _ in features]
    index = {label: i for i, label in enumerate(labels)}
    return [(ids, segments, index[r["label"]] if "label" in r else 0)
            for (ids, segments), r in zip(features, records)]
