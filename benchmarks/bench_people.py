"""Several people in one picture: tracking, speaker attribution and cost of `analyze --people`.

    python benchmarks/bench_people.py ../shared/data [--clips 6] [--seconds 12] [--no-cost]

Generated scenes (emolite.demo.Scene): 2-4 real faces from the shared face pool (faces_mux
photos of different people whose face the detector finds at 100 px in a 640-px frame, each on
a differently coloured torso) moving across a 640×480
picture: two of them cross paths, one is hidden for 1 s (something passes in front), the last
enters after 3 s. The voice track is real speech (RAVDESS actors 01-18 sentences, silences
trimmed) in turns, each turn given to one visible person, whose mouth opens with the speech
envelope (an ellipse: the face photos are stills). The tracker's constants were set on scenes
of the shipped astronaut photo (tests/test_people.py); the speaker rule's MOUTH_RATIO on the
dev scenes `--first 100` (seeds 100-105); the figures are on seeds 0-5 (the default).

Tracking is scored on the frames analyze samples (the model's frames per window), with the
same code path (features.people_features): identity switches per 100 frames (a person's
matched track id changing), the share of frames in which every visible face is tracked,
tracked boxes that are nobody. Speaker attribution is scored on analyze's rows: over windows
where one person speaks for most of the window, the share whose speaker row is that person
("accuracy"), the share given to anyone ("attributed"), and how often an attribution is right.
Cost: analyze --people wall time per sampled frame with 1, 2, 4, 8 faces and × real time
on a 640×480 four-person clip (2 threads). Prints JSON; saves docs/results/people.json.
"""

from __future__ import annotations

import argparse
import csv
import time
from pathlib import Path

import numpy as np

import common

W, H, FACE_PX = 640, 480, 110
SHIRTS = [(200, 40, 40), (40, 160, 40), (40, 40, 200), (200, 180, 40), (160, 40, 160), (40, 170, 170),
          (230, 120, 30), (120, 120, 120)]


def pool_faces(data: Path, n: int, seed: int, detector) -> list[tuple[np.ndarray, tuple[float, float, float]]]:
    """n face photos of n different people, with their mouth position (fractions of the photo)."""
    from emolite.media import read_image

    rows = list(csv.DictReader(open(data / "faces_mux" / "labels.csv")))
    rng = np.random.default_rng(seed)
    rng.shuffle(rows)
    out, names = [], set()
    for r in rows:
        name = Path(r["file"]).stem.rsplit("_", 1)[0]
        if name in names:
            continue
        img = read_image(data / "faces_mux" / r["file"])
        if min(img.shape[:2]) < 100:
            continue
        found = [f for f in detector(img) if f.score > 0.9 and f.landmarks is not None]
        if len(found) != 1 or not _found_small(img, detector):
            continue
        lm = found[0].landmarks
        h, w = img.shape[:2]
        out.append((img, (float(lm[3:, 0].mean() / w), float(lm[3:, 1].mean() / h), float((lm[4, 0] - lm[3, 0]) / w))))
        names.add(name)
        if len(out) == n:
            return out
    raise SystemExit("not enough distinct faces in faces_mux")


def _found_small(img: np.ndarray, detector, side: int = 100) -> bool:
    """Is the face still found at the size it has in the scenes (`side` px in a 640-px frame)?"""
    import cv2

    canvas = np.full((H, W, 3), 110, np.uint8)
    small = cv2.resize(img, (side, side * img.shape[0] // img.shape[1]), interpolation=cv2.INTER_AREA)
    canvas[100:100 + small.shape[0], 100:100 + side] = small
    return len([f for f in detector(canvas) if f.score > 0.9]) == 1


def speech_turns(data: Path, seconds: float, seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Real sentences one after another (0.5-1 s apart) over `seconds`: audio and (start, end) turns."""
    from emolite.media import SAMPLE_RATE, load_audio

    rows = [r for r in csv.DictReader(open(data / "ravdess" / "labels.csv")) if r["modality"] == "audio"]
    rng = np.random.default_rng(seed)
    audio = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    turns, t = [], 0.3
    while t < seconds - 1.0:
        x = load_audio(data / "ravdess" / rows[int(rng.integers(len(rows)))]["file"])
        env = np.convolve(np.abs(x), np.ones(400) / 400, "same")
        on = np.flatnonzero(env > 0.1 * env.max())
        x = x[on[0]:on[-1]] / (np.abs(x).max() + 1e-6) * 0.5
        n = min(x.size, audio.size - int(t * SAMPLE_RATE))
        audio[int(t * SAMPLE_RATE):int(t * SAMPLE_RATE) + n] = x[:n]
        turns.append((t, t + n / SAMPLE_RATE))
        t += n / SAMPLE_RATE + float(rng.uniform(0.5, 1.0))
    return audio, turns


def make_scene(faces, audio, turns, seconds: float, seed: int):
    """Actors on crossing paths, one hidden for 1 s, the last entering at 3 s; turns go round the
    people visible at the turn's middle."""
    from emolite import demo
    from emolite.media import SAMPLE_RATE

    rng = np.random.default_rng(seed)
    n = len(faces)
    actors = []
    for k, (img, mouth) in enumerate(faces):
        y = 150 + 260 * (k // 2) / max(1, (n - 1) // 2) if n > 2 else 200 + 40 * k
        x0, x1 = (100, 540) if k % 2 == 0 else (540, 100)   # pairs cross in the middle
        speed = float(rng.uniform(0.8, 1.2))
        path = (lambda t, x0=x0, x1=x1, y=y, s=speed: (x0 + (x1 - x0) * (0.5 - 0.5 * np.cos(np.pi * min(1.0, s * t / seconds))),
                                                       y + 15 * np.sin(t)))
        hidden = ((seconds * 0.6, seconds * 0.6 + 1.0),) if k == 1 else ()
        actors.append(demo.Actor(img, path, SHIRTS[k], enter=3.0 if k == n - 1 and n > 2 else 0.0, hidden=hidden,
                                 mouth=mouth))
    env = np.sqrt(np.convolve(audio ** 2, np.ones(800) / 800, "same"))
    env = np.clip(env / (np.percentile(env[env > 0], 95) + 1e-6), 0, 1) if env.any() else env
    scene = demo.Scene(actors, W, H, FACE_PX)
    who = []
    for i, (a, b) in enumerate(turns):
        vis = [k for k in range(n) if scene.visible(k, (a + b) / 2)]
        who.append(vis[i % len(vis)])
    scene.speaker = lambda t: next((k for (a, b), k in zip(turns, who) if a <= t < b), None)
    scene.envelope = lambda t: float(env[min(int(t * SAMPLE_RATE), env.size - 1)])
    return scene


def visible(scene, t: float) -> dict[int, tuple]:
    """The faces a viewer sees at t: on screen, whole, and not mostly covered by a face drawn in
    front (the scene draws lower faces last)."""
    boxes = {a: b for a, b in scene.boxes(t).items() if b[0] >= 0 and b[2] <= W and b[1] >= 0 and b[3] <= H}
    drawn = sorted(boxes, key=lambda k: scene.actors[k].path(t)[1])   # the scene's drawing order
    out = {}
    for a, b in boxes.items():
        front = [boxes[k] for k in drawn[drawn.index(a) + 1:]]
        cover = max((max(0, min(b[2], c[2]) - max(b[0], c[0])) * max(0, min(b[3], c[3]) - max(b[1], c[1]))
                     for c in front), default=0)
        if cover < 0.5 * (b[2] - b[0]) * (b[3] - b[1]):
            out[a] = b
    return out


def match(truth: dict, boxes: dict) -> dict[int, int]:
    """tracked id -> actor, by the best overlap above 0.1 (each actor at most once)."""
    from emolite.faces import iou

    out, used = {}, set()
    pairs = sorted(((iou(np.array(truth[k]), f.box), pid, k) for pid, f in boxes.items() for k in truth), reverse=True)
    for o, pid, k in pairs:
        if o > 0.1 and pid not in out and k not in used:
            out[pid] = k
            used.add(k)
    return out


def track_scores(model, path: Path, scene) -> dict:
    """Replay analyze's frame sampling through features.people_features and score the tracks."""
    from emolite import media
    from emolite.features import people_features
    from emolite.grid import detect_every, frame_key, model_rate
    from emolite.people import PeopleTracker

    spec = model.spec
    fps = model_rate(spec.frames, spec.window_seconds)
    tracker, memo, done = PeopleTracker(), {}, set()
    frames = switches = full = false_pos = boxes_total = 0
    last_id: dict[int, int] = {}
    for w in media.iter_windows(path, fps=fps, window=spec.window_seconds, hop=spec.hop_seconds):
        people_features(w, model.detector, tracker, spec.face_size, spec.context_size, spec.margin, spec.align,
                        memo, detect_every(True), fps)
        for t in w.times:
            k = frame_key(t)
            if k in done:
                continue
            done.add(k)
            truth = visible(scene, t)
            got = tracker.at(t)
            m = match(truth, got)
            boxes_total += len(got)
            false_pos += len(got) - len(m)
            if truth:
                frames += 1
                full += set(m.values()) >= set(truth)
            for pid, actor in m.items():
                if actor in last_id and last_id[actor] != pid:
                    switches += 1
                last_id[actor] = pid
        for k in [k for k in memo if k < w.start]:
            del memo[k]
    return {"frames": frames, "id_switches": switches, "frames_all_tracked": full, "tracked_boxes": boxes_total,
            "boxes_of_nobody": false_pos}


def speaker_scores(result, scene, turns, ids_to_actor: dict[int, int]) -> dict:
    """Windows where one person speaks most of the window: is the speaker row that person?"""
    windows = sorted({(w.start, w.end) for w in result.windows})
    n = right = attributed = wrong = 0
    for a, b in windows:
        ts = np.arange(a, b, 0.05)
        talk = [scene.speaker(t) for t in ts]
        spoken = [k for k in talk if k is not None]
        if len(spoken) < 0.5 * len(ts):
            continue
        truth = max(set(spoken), key=spoken.count)
        n += 1
        rows = [w for w in result.windows if (w.start, w.end) == (a, b) and w.speaker]
        if rows:
            attributed += 1
            if ids_to_actor.get(rows[0].person) == truth:
                right += 1
            else:
                wrong += 1
    return {"voiced_windows": n, "right": right, "attributed": attributed, "wrong": wrong}


def id_map(result, scene) -> dict[int, int]:
    """person id -> actor, by majority over the rows' boxes (in the video's pixels = the scene's)."""
    from collections import Counter

    votes: dict[int, Counter] = {}
    for w in result.windows:
        if w.person is None or w.face_box is None:
            continue
        mid = (w.start + w.end) / 2
        truth = scene.boxes(mid)
        from emolite.faces import Face
        m = match(truth, {w.person: Face(np.array(w.face_box, np.float32), 1.0)})
        if m:
            votes.setdefault(w.person, Counter())[m[w.person]] += 1
    return {p: c.most_common(1)[0][0] for p, c in votes.items()}


def cost(model, data: Path, work: Path, detector) -> dict:
    from emolite import demo

    out = {}
    faces = pool_faces(data, 8, 99, detector)
    for n in (1, 2, 4, 8):
        actors = [demo.Actor(img, (lambda t, k=k: (90 + 150 * (k % 4) + 10 * np.sin(t), 130 + 220 * (k // 4))),
                             SHIRTS[k], mouth=m) for k, (img, m) in enumerate(faces[:n])]
        path = demo.make_clip(work / f"cost{n}.mp4", seconds=20.0, fps=25, frames=demo.Scene(actors, W, H, 100))
        t0 = time.perf_counter()
        r = model.analyze(path, people=True)
        dt = time.perf_counter() - t0
        sampled = 20.0 * model.spec.frames / model.spec.window_seconds
        out[str(n)] = {"faces_tracked": len(r.people), "ms_per_sampled_frame": 1000 * dt / sampled,
                       "x_real_time": 20.0 / dt}
        common.log(f"cost {n} faces: {out[str(n)]}")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", type=Path)
    ap.add_argument("--clips", type=int, default=6)
    ap.add_argument("--first", type=int, default=0, help="first scene seed (100: the dev scenes)")
    ap.add_argument("--seconds", type=float, default=12.0)
    ap.add_argument("--work", type=Path, default=Path("/tmp/emolite-people"))
    ap.add_argument("--no-cost", action="store_true")
    ap.add_argument("--only-cost", action="store_true", help="add the cost figures to an earlier run's JSON")
    ap.add_argument("--name", default="people")
    args = ap.parse_args()
    common.setup(threads=2)
    import emolite
    from emolite import demo

    args.work.mkdir(parents=True, exist_ok=True)
    model = emolite.load_model()
    if args.only_cost:
        import json

        out = json.loads((common.RESULTS / f"{args.name}.json").read_text())
        out["cost"] = cost(model, args.data, args.work, model.detector)
        common.emit(args.name, out)
        return
    clips, t0 = [], time.time()
    for i in range(args.first, args.first + args.clips):
        n = 2 + i % 3
        faces = pool_faces(args.data, n, i, model.detector)
        audio, turns = speech_turns(args.data, args.seconds, i)
        scene = make_scene(faces, audio, turns, args.seconds, i)
        path = demo.make_clip(args.work / f"scene{i}_{n}p.mp4", seconds=args.seconds, fps=15, frames=scene,
                              sound=audio)
        tr = track_scores(model, path, scene)
        res = model.analyze(path, people=True)
        sp = speaker_scores(res, scene, turns, id_map(res, scene))
        clips.append({"clip": path.name, "people": n, "tracks": len(res.people), **tr, **sp})
        common.log(clips[-1])
    tot = {k: sum(c[k] for c in clips) for k in ("frames", "id_switches", "frames_all_tracked", "tracked_boxes",
                                                 "boxes_of_nobody", "voiced_windows", "right", "attributed", "wrong")}
    out = {"what": "analyze --people on generated multi-person scenes (real faces_mux faces, real RAVDESS speech)",
           "clips": clips,
           "id_switches_per_100_frames": 100 * tot["id_switches"] / max(tot["frames"], 1),
           "frames_with_every_visible_face_tracked": tot["frames_all_tracked"] / max(tot["frames"], 1),
           "tracked_boxes_of_nobody": tot["boxes_of_nobody"] / max(tot["tracked_boxes"], 1),
           "speaker_accuracy": tot["right"] / max(tot["voiced_windows"], 1),
           "speaker_attributed": tot["attributed"] / max(tot["voiced_windows"], 1),
           "speaker_precision": tot["right"] / max(tot["attributed"], 1),
           "totals": tot, "seconds": time.time() - t0, "environment": common.environment()}
    if not args.no_cost:
        out["cost"] = cost(model, args.data, args.work, model.detector)
    common.emit(args.name, out)


if __name__ == "__main__":
    main()
