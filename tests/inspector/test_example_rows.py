"""Library examples are fine-tuning rows: training split only, cropped to their box, one row per image."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from goodstation import confirm_part, open_station
from inspector.learning import loop
from inspector.learning.engine import EngineOutcome, PairDataset
from inspector.learning.example_rows import with_examples
from inspector.learning.pairs import TrainingPair, read_pairs_jsonl, write_pairs_jsonl
from inspector.library.labels import Example
from inspector.store.decision_log import store_image


def test_examples_become_training_rows_of_the_finetune(tmp_path: Path, monkeypatch) -> None:
    with open_station(tmp_path) as st:
        log = st.log
        qa, op = log.login("qa", "Qa-pass-123456"), log.login("op", "Op-pass-1234567")
        confirmed = [confirm_part(st, 10 + seq, seq, "ok" if seq % 2 else "scratch", op) for seq in range(12)]
        part_sha = log.inspection(confirmed[0])["image_sha256"]
        image = np.zeros((20, 30, 3), np.uint8)
        image[2:8, 3:13] = 255
        boxed = store_image(log.sdb.image_root, image)
        plain = store_image(log.sdb.image_root, np.full((9, 9, 3), 77, np.uint8))
        log.library.add_example("scratch", Example(sha256=boxed, box=(3, 2, 13, 8), reason="boxed"), qa, "r")
        log.library.add_example("dent", Example(sha256=plain), qa, "r")
        log.library.add_example("crack", Example(sha256=part_sha), qa, "a confirmed part again")
        st.refresh_library()

        seen = {}

        def fake_train(ts, *args, **kwargs):
            seen["ts"] = ts
            return EngineOutcome("cancelled", "parent", ts.data_hash, {})

        monkeypatch.setattr(loop, "train_candidate", fake_train)
        loop.run_finetune(log, "base", user=qa)
        ts = seen["ts"]
        rows = [p for p in ts.train if p.source == "library"]
        assert {(p.label_id, p.image_sha256, p.box) for p in rows} == {
            ("scratch", boxed, (3, 2, 13, 8)),
            ("dent", plain, None),
        }
        assert not any(p.source == "library" for p in ts.heldout)
        assert ts.excluded["example_is_a_confirmed_part"] == 1
        scratch_texts = log.library.library().label("scratch").descriptions
        assert rows[0].descriptions == tuple(scratch_texts) or rows[1].descriptions == tuple(scratch_texts)
        crop = PairDataset([p for p in rows if p.box]).load_image(0)
        assert crop.shape == (6, 10, 3) and crop.min() == 255  # the box, not the whole image

        without = with_examples(ts, log.library.library(1), 1, log.sdb.image_root)  # version 1: no examples
        assert len(without.train) == len(ts.train)


def test_box_survives_the_pairs_file_and_old_ids_do_not_change(tmp_path: Path) -> None:
    plain = TrainingPair("a" * 64, "x.png", "ok", ("fine",))
    boxed = TrainingPair("b" * 64, "y.png", "dent", ("a dent",), source="library", box=(1, 2, 3, 4))
    assert plain.pair_id == TrainingPair("a" * 64, "elsewhere.png", "ok", ("fine",)).pair_id
    assert boxed.pair_id != TrainingPair("b" * 64, "y.png", "dent", ("a dent",)).pair_id
    from inspector.learning.pairs import TrainingSet

    path = write_pairs_jsonl(TrainingSet((plain, boxed), ()), tmp_path / "p.jsonl")
    back = read_pairs_jsonl([path], heldout_fraction=0.0)
    assert {p.image_sha256: p.box for p in back.train} == {"a" * 64: None, "b" * 64: (1, 2, 3, 4)}
