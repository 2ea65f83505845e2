"""One inference core: the same frames and audio through `analyze` (a clip file), a live serve
`Session` (fed the frames analyze sampled, at their times, as PNG, with the window's audio) and
`EmotionModel.predict` (the crops analyze cut, with the window's audio) give the same
probabilities, to 1e-5, with the shipped default model: one face, several people, no face,
no voice."""

import cv2
import numpy as np
import pytest

import emolite
from emolite import demo, media
from emolite.features import window_features
from emolite.grid import detect_every, model_rate
from emolite.serve import session as S

TOL = 1e-5


@pytest.fixture(scope="module")
def model():
    return emolite.load_model()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("parity")
    face = demo.face_image()
    two = demo.Scene([demo.Actor(face, lambda t: (170 + 20 * t, 230)),
                      demo.Actor(face[:, ::-1].copy(), lambda t: (470 - 20 * t, 250), (40, 160, 40))], face_px=150)
    return {"one face": demo.make_clip(d / "face.mp4", seconds=4.0, width=320, height=240),
            "several people": demo.make_clip(d / "two.mp4", seconds=4.0, fps=10, frames=two),
            "no face": demo.make_clip(d / "noface.mp4", seconds=4.0, width=320, height=240, face=False),
            "no voice": demo.make_clip(d / "silent.mp4", seconds=4.0, width=320, height=240,
                                       sound=np.zeros(4 * 16000, np.float32))}


def probs(pred, classes):
    return None if pred is None or pred.label is None else np.array([pred.probs[c] for c in classes])


def close(a, b) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and np.abs(a - b).max() < TOL)


def live(model, path, people: bool) -> list[S.PeopleResult]:
    """A Session fed the file's frames as analyze samples them (PNG, capture times = their
    times), each window's audio with the window's last frame; the model run on that frame."""
    settings = S.live_settings(model)
    spec = settings.spec
    s = S.Session("parity", model.detector, settings, max_people=8 if people else 1)
    out = []
    for w in media.iter_windows(path, fps=model_rate(spec.frames, spec.window_seconds),
                                window=spec.window_seconds, hop=spec.hop_seconds):
        for i, (t, frame) in enumerate(zip(w.times, w.frames)):
            if s.frames and t <= s.frames[-1][0] + 1e-6:
                continue                      # a frame an earlier (overlapping) window gave
            png = cv2.imencode(".png", frame[..., ::-1])[1].tobytes()
            job = S.Job(0, 1000.0 * t, png, (frame.shape[1], frame.shape[0]), 0.0)
            _, work = s.process(job, w.audio)
        out.append(S.infer(model, settings, work)[0])
    return out


@pytest.mark.parametrize("case", ["one face", "no face", "no voice"])
def test_analyze_a_live_session_and_predict_agree(model, clips, case):
    path = clips[case]
    r = model.analyze(path)
    assert len(r.windows) == 2 and r.windows[1].start == 1.0      # a window on the grid's phase, one off it
    sessions = live(model, path, people=False)
    spec = model.spec
    rate = model_rate(spec.frames, spec.window_seconds)
    for w, ws, res in zip(media.iter_windows(path, fps=rate, window=spec.window_seconds, hop=spec.hop_seconds),
                          r.windows, sessions):
        a = probs(ws, model.classes)
        assert a is not None                      # a face or a voice in each case
        assert close(probs(res.main, model.classes), a), (case, w.start)
        f = window_features(w, model.detector, spec.face_size, spec.context_size, spec.margin, spec.align,
                            detect_every=detect_every(False), fps=rate)
        p = model.predict(face=f.face, face_mask=f.face_mask, audio=w.audio) if f.face_mask.any() \
            else model.predict(audio=w.audio)
        assert close(probs(p, model.classes), a), (case, w.start)
    assert r.windows[0].face_found == (case != "no face") and r.windows[0].voice == (case != "no voice")


def test_several_people_agree_between_analyze_and_a_live_session(model, clips):
    path = clips["several people"]
    r = model.analyze(path, people=True)
    rows = {}
    for w in r.windows:
        rows.setdefault((w.start, w.end), {})[w.person] = w
    sessions = live(model, path, people=True)
    assert len(sessions) == len(rows) == 2
    checked = 0
    for (span, by), res in zip(rows.items(), sessions):
        people = {p: pred for p, _, pred, _ in res.people}
        assert sorted(people) == sorted(p for p in by if p is not None) == [1, 2], span
        for p, pred in people.items():
            assert close(probs(pred, model.classes), probs(by[p], model.classes)), (span, p)
            checked += 1
        assert [p for p, _, _, spoke in res.people if spoke] == [p for p, w in by.items() if w.speaker]
        assert close(probs(res.voice_alone, model.classes), probs(by.get(None), model.classes))
    assert checked == 4
