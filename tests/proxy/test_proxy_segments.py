"""The reassembly state machine of split uploads: hold, whole, abandon, skip; and what a
segment sent again gets once the image was protected."""

from __future__ import annotations

import pytest
from grasp_sdk.policy import ChunkedUpload

from proxy_addon.segments import Abandon, Again, Hold, Reassembly, Reject, Resend, Skip, Whole

LIMITS = ChunkedUpload("x", max_total_bytes=1000, max_segments=4, hold_s=10.0)
IMAGE = bytes(range(256)) * 3  # 768 bytes
PIECES = [IMAGE[:300], IMAGE[300:600], IMAGE[600:]]


def declared(total: int = len(IMAGE), max_held: int = 10_000) -> Reassembly[str, str]:
    uploads: Reassembly[str, str] = Reassembly(max_held)
    assert uploads.declare("m1", total, "image/jpeg", LIMITS, now=0.0) is None
    return uploads


def test_segments_in_order_make_the_whole_image() -> None:
    uploads = declared()
    steps = [uploads.add("m1", i, piece, f"req{i}", now=1.0 + i) for i, piece in
             enumerate(PIECES)]
    assert steps[0] == Hold(300, 768) and steps[1] == Hold(600, 768)
    whole = steps[2]
    assert isinstance(whole, Whole)
    assert whole.image == IMAGE and whole.media_type == "image/jpeg"
    assert whole.lengths == (300, 300, 168)
    assert [s.item for s in whole.segments] == ["req0", "req1", "req2"]
    assert uploads.held_bytes == 768  # held until protected, abandoned or left
    assert uploads.close("m1") is None and "m1" in uploads


@pytest.mark.parametrize("order", [(2, 0, 1), (1, 2, 0), (0, 2, 1)])
def test_segments_in_any_order_make_the_whole_image_in_index_order(
        order: tuple[int, ...]) -> None:
    uploads = declared()
    *held, last = order
    for index in held:
        assert isinstance(uploads.add("m1", index, PIECES[index], f"req{index}", 1.0), Hold)
    whole = uploads.add("m1", last, PIECES[last], f"req{last}", now=2.0)
    assert isinstance(whole, Whole) and whole.image == IMAGE
    assert [s.index for s in whole.segments] == [0, 1, 2]
    assert [s.item for s in whole.segments] == ["req0", "req1", "req2"]


def test_segments_counted_from_one_make_the_whole_image() -> None:
    uploads = declared()
    uploads.add("m1", 3, PIECES[2], "req3", now=1.0)
    uploads.add("m1", 1, PIECES[0], "req1", now=1.0)
    whole = uploads.add("m1", 2, PIECES[1], "req2", now=1.0)
    assert isinstance(whole, Whole) and whole.image == IMAGE
    assert uploads.protected("m1", ("a" * 300, "b" * 300, "c" * 168), now=2.0) is None  # type: ignore[arg-type]
    assert uploads.add("m1", 1, PIECES[0], "again", now=3.0) == Resend(1, "a" * 300)  # type: ignore[arg-type]


def test_a_segment_held_already_is_answered_again() -> None:
    uploads = declared()
    uploads.add("m1", 0, PIECES[0], "req0", now=1.0)
    assert uploads.add("m1", 0, PIECES[0], "retry", now=2.0) == Again(0)
    assert uploads.held_bytes == 300
    assert isinstance(uploads.add("m1", 1, PIECES[1], "req1", now=3.0), Hold)


def test_one_segment_holding_everything_is_whole_at_once() -> None:
    uploads = declared()
    whole = uploads.add("m1", 0, IMAGE, "only", now=1.0)
    assert isinstance(whole, Whole) and whole.lengths == (768,)


def test_an_unknown_media_id_is_not_for_the_reassembly() -> None:
    uploads = declared()
    assert uploads.add("other", 0, IMAGE, "x", now=1.0) is None
    assert uploads.close("other") is None


@pytest.mark.parametrize(("sent", "why"), [
    ([(0, PIECES[0]), (0, PIECES[1])], "segment 0 arrived again with other bytes"),
    ([(0, PIECES[0]), (1, PIECES[1]), (2, IMAGE)], "more than total_bytes 768"),
    ([(i, b"x") for i in range(5)], "more than 4 segments"),
    ([(5, b"x")], "more than 4 segments"),
    ([(0, PIECES[0]), (2, IMAGE[300:])], "indices [0, 2] leave a gap"),
    ([(2, IMAGE)], "indices [2] leave a gap"),
])
def test_a_gap_other_bytes_and_over_the_limit_abandon(sent: list[tuple[int, bytes]],
                                                  why: str) -> None:
    uploads = declared()
    *held, (index, data) = sent
    for i, piece in held:
        assert isinstance(uploads.add("m1", i, piece, f"req{i}", now=1.0), Hold)
    step = uploads.add("m1", index, data, "last", now=2.0)
    assert isinstance(step, Abandon) and why in step.reason
    assert [s.item for s in step.released] == [f"req{i}" for i, _ in held]
    assert uploads.held_bytes == 0
    # Every later request of the upload hears the same reason, with nothing to release.
    assert uploads.add("m1", len(sent), b"y", "later", now=3.0) == Abandon(step.reason)
    assert uploads.verdict("m1") == Abandon(step.reason)
    assert uploads.close("m1") == Abandon(step.reason)


def protected() -> Reassembly[str, str]:
    uploads = declared()
    for i, piece in enumerate(PIECES):
        uploads.add("m1", i, piece, f"req{i}", now=1.0)
    uploads.protected("m1", (b"P" * 300, b"Q" * 300, b"R" * 168), now=2.0)
    return uploads


def test_a_segment_sent_again_after_protection_gets_its_protected_piece() -> None:
    uploads = protected()
    assert uploads.held_bytes == 768  # the protected pieces, in place of the originals
    assert uploads.add("m1", 1, PIECES[1], "retry", now=3.0) == Resend(1, b"Q" * 300)
    assert uploads.close("m1") is None  # FINALIZE, and again
    assert uploads.close("m1") is None
    assert uploads.add("m1", 2, PIECES[2], "late", now=4.0) == Resend(2, b"R" * 168)


@pytest.mark.parametrize(("index", "data", "why"), [
    (1, PIECES[0], "segment 1 arrived again with bytes other than those"),
    (3, b"x", "segment 3 arrived after the image was complete (segments 0...2)"),
])
def test_a_segment_sent_again_with_other_bytes_is_rejected(index: int, data: bytes,
                                                           why: str) -> None:
    uploads = protected()
    step = uploads.add("m1", index, data, "retry", now=3.0)
    assert isinstance(step, Reject) and why in step.reason
    assert uploads.add("m1", 0, PIECES[0], "retry", now=3.0) == Resend(0, b"P" * 300)


def test_a_segment_sent_again_while_the_image_is_protected_is_rejected() -> None:
    uploads = declared()
    assert isinstance(uploads.add("m1", 0, IMAGE, "all", now=1.0), Whole)
    step = uploads.add("m1", 0, IMAGE, "retry", now=2.0)
    assert isinstance(step, Reject) and "before the image was protected" in step.reason


def test_protected_pieces_are_let_go_after_the_hold_time() -> None:
    uploads = protected()
    assert uploads.expire("m1", now=11.9) is None and uploads.held_bytes == 768
    assert uploads.expire("m1", now=12.0) is None and uploads.held_bytes == 0
    step = uploads.add("m1", 0, PIECES[0], "retry", now=13.0)
    assert isinstance(step, Reject) and "protected bytes were let go" in step.reason


def test_protected_pieces_make_room_for_new_segments_oldest_first() -> None:
    uploads = protected()  # 768 of 1000 bytes kept
    uploads.max_held_bytes = 1000
    assert uploads.declare("m2", 500, "image/jpeg", LIMITS, now=3.0) is None
    assert isinstance(uploads.add("m2", 0, IMAGE[:400], "m2-0", now=3.0), Hold)
    assert uploads.held_bytes == 400  # m1's protected pieces were let go
    assert isinstance(uploads.add("m1", 0, PIECES[0], "retry", now=3.0), Reject)


def test_a_close_before_the_last_segment_releases_the_held_ones() -> None:
    uploads = declared()
    uploads.add("m1", 0, PIECES[0], "req0", now=1.0)
    step = uploads.close("m1")
    assert isinstance(step, Abandon) and "closed after 300 of 768 bytes" in step.reason
    assert [s.item for s in step.released] == ["req0"]
    assert uploads.held_bytes == 0
    # Remembered: a FINALIZE or an APPEND sent again hears the same reason.
    assert uploads.close("m1") == Abandon(step.reason)
    assert uploads.add("m1", 0, PIECES[0], "retry", now=2.0) == Abandon(step.reason)


def test_the_memory_bound_counts_every_upload() -> None:
    uploads = declared(max_held=800)
    assert uploads.declare("m2", 600, "image/png", LIMITS, now=0.0) is None
    assert isinstance(uploads.add("m1", 0, PIECES[0], "a", now=1.0), Hold)
    assert isinstance(uploads.add("m2", 0, IMAGE[:300], "b", now=1.0), Hold)
    assert uploads.held_bytes == 600
    step = uploads.add("m1", 1, PIECES[1], "c", now=1.0)
    assert isinstance(step, Abandon) and "800-byte bound" in step.reason
    assert uploads.held_bytes == 300  # m1's segment released, m2's still held


@pytest.mark.parametrize(("total", "media_type", "why"), [
    (5000, "image/jpeg", "outside 1..1000"),
    (0, "image/jpeg", "outside 1..1000"),
    (500, "video/mp4", "not an image"),
    (900, "image/jpeg", "800-byte bound"),
])
def test_uploads_not_to_hold_are_skipped(total: int, media_type: str, why: str) -> None:
    uploads: Reassembly[str, str] = Reassembly(800)
    skip = uploads.declare("m1", total, media_type, LIMITS, now=0.0)
    assert isinstance(skip, Skip) and why in skip.reason
    assert uploads.add("m1", 0, b"x", "req", now=1.0) == skip
    assert uploads.verdict("m1") == skip and uploads.held_bytes == 0


def test_hold_time_runs_from_the_first_segment() -> None:
    uploads = declared()
    uploads.add("m1", 0, PIECES[0], "req0", now=5.0)
    assert uploads.expire("m1", now=14.9) is None
    step = uploads.expire("m1", now=15.0)
    assert isinstance(step, Abandon) and "within 10 s" in step.reason
    assert [s.item for s in step.released] == ["req0"]
    assert uploads.expire("m1", now=99.0) is None  # abandoned once


def test_a_late_segment_abandons_even_before_the_timer() -> None:
    uploads = declared()
    uploads.add("m1", 0, PIECES[0], "req0", now=5.0)
    step = uploads.add("m1", 1, PIECES[1], "req1", now=15.5)
    assert isinstance(step, Abandon) and "within 10 s" in step.reason
    assert [s.item for s in step.released] == ["req0"]


def test_a_whole_image_that_could_not_be_protected_is_abandoned() -> None:
    uploads = declared()
    assert isinstance(uploads.add("m1", 0, IMAGE, "all", now=1.0), Whole)
    step = uploads.abandon("m1", "service down")
    assert step.reason == "service down" and [s.item for s in step.released] == ["all"]
    assert uploads.close("m1") == Abandon("service down") and uploads.held_bytes == 0
    assert uploads.verdict("m1") == Abandon("service down")  # every later request hears it


def test_after_no_face_a_segments_bytes_decide() -> None:
    uploads = declared()
    assert isinstance(uploads.add("m1", 0, IMAGE, "all", now=1.0), Whole)
    uploads.leave("m1", "no face found in its image")
    assert uploads.checked("m1") and uploads.verdict("m1") is None
    assert uploads.add("m1", 0, IMAGE, "again", now=2.0) == Skip("no face found in its image")
    other = uploads.add("m1", 0, bytes(len(IMAGE)), "other", now=3.0)
    assert isinstance(other, Skip) and other.unprotected and "other than those" in other.reason


def test_leave_hands_back_the_held_segments_and_skips_the_rest() -> None:
    uploads = declared()
    uploads.add("m1", 0, PIECES[0], "req0", now=1.0)
    assert [s.item for s in uploads.leave("m1", "a digest I cannot redo")] == ["req0"]
    assert uploads.add("m1", 1, PIECES[1], "req1", now=2.0) == Skip("a digest I cannot redo")
    assert uploads.held_bytes == 0


def test_a_redeclared_media_id_keeps_its_held_segments() -> None:
    uploads = declared()
    uploads.add("m1", 0, PIECES[0], "req0", now=1.0)
    assert isinstance(uploads.declare("m1", 10, "image/jpeg", LIMITS, now=2.0), Skip)
    assert uploads.add("m1", 1, PIECES[1], "req1", now=2.0) == Hold(600, 768)


def test_idle_uploads_are_forgotten_and_the_count_is_bounded() -> None:
    uploads: Reassembly[str, str] = Reassembly(10_000, max_uploads=2)
    uploads.declare("old", 10, "image/jpeg", LIMITS, now=0.0)
    uploads.declare("busy", 768, "image/jpeg", LIMITS, now=0.0)
    uploads.add("busy", 0, PIECES[0], "req0", now=0.0)
    uploads.declare("new", 10, "image/jpeg", LIMITS, now=1.0)  # evicts the idle "old"
    assert "old" not in uploads and "busy" in uploads and "new" in uploads
    uploads.declare("later", 10, "image/jpeg", LIMITS, now=30.0)  # "new" idle for > hold_s
    assert "new" not in uploads and "busy" in uploads
    assert list(uploads.pending()) == ["busy"]


def test_finished_uploads_are_remembered_until_the_count_bound() -> None:
    uploads: Reassembly[str, str] = Reassembly(10_000, max_uploads=2)
    uploads.declare("done", 768, "image/jpeg", LIMITS, now=0.0)
    uploads.add("done", 0, IMAGE, "all", now=0.0)
    uploads.protected("done", (IMAGE,), now=0.0)
    uploads.declare("other", 10, "video/mp4", LIMITS, now=500.0)  # long after hold_s
    assert "done" in uploads and uploads.held_bytes == 0  # its pieces let go, not its id
    uploads.declare("third", 10, "image/jpeg", LIMITS, now=501.0)
    assert "done" not in uploads and "other" in uploads
