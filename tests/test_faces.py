import numpy as np

from emolite import faces as F
from emolite.demo import face_image, frame_at
from emolite.features import still_features, window_features
from emolite.media import Window


def test_retinaface_finds_the_real_face():
    det = F.get_detector()
    found = det(frame_at(0.0, 640, 480))
    assert len(found) == 1 and found[0].score > 0.9
    assert found[0].landmarks.shape == (5, 2)
    x1, y1, x2, y2 = found[0].box
    assert 150 < (x1 + x2) / 2 < 490 and 60 < (y1 + y2) / 2 < 420


def test_no_face_gives_empty_list_and_small_stills_fall_back_to_whole_image():
    det = F.get_detector()
    assert det(np.full((240, 320, 3), 128, np.uint8)) == []
    tiny = np.full((1, 48, 48, 3), 90, np.uint8)  # a pre-cropped dataset image (CK+ is 48×48)
    ft = still_features(tiny[0], det)
    assert ft.face_mask.tolist() == [True] and list(ft.boxes[0]) == [0, 0, 48, 48] and ft.still
    # a small *video* frame without a face stays faceless, even a window of no length
    ft = window_features(Window(0.0, 0.0, tiny, np.zeros(1), None), det)
    assert ft.face_mask.tolist() == [False]


def _face(x, y, s, score=0.99):
    return F.Face(np.array([x, y, x + s, y + s], np.float32), score, None)


def test_track_follows_main_face_and_interpolates_gaps():
    # A big face moving right, a small one elsewhere that appears in fewer frames.
    dets = [[_face(100 + 5 * i, 100, 80), _face(400, 50, 30)] for i in range(8)]
    dets[3] = [_face(400, 50, 30)]   # the main face is missed once
    dets[5] = [_face(400, 50, 30)]
    out = F.track(dets, (480, 640))
    assert all(f is not None for f in out)
    centres = [(f.box[0] + f.box[2]) / 2 for f in out]
    assert all(120 < c < 200 for c in centres) and np.all(np.diff(centres) > 0)


def test_track_prefers_previous_box():
    dets = [[_face(100, 100, 60), _face(400, 100, 60)] for _ in range(4)]
    out = F.track(dets, (480, 640), prev=np.array([400, 100, 460, 160], np.float32))
    assert out[0].box[0] > 300


def test_crop_and_letterbox_shapes():
    frame = frame_at(0.0, 640, 480)
    (f,) = F.get_detector()(frame)
    crop = F.crop_face(frame, f)
    aligned = F.crop_face(frame, f, align=True)
    assert crop.shape == aligned.shape == (112, 112, 3)
    # the crop is mostly face (skin-toned, bright), not the synthetic background
    assert crop.mean() > 60
    box = F.letterbox(frame)
    assert box.shape == (112, 112, 3)
    assert box[:10].max() == 0 and box[-10:].max() == 0  # 4:3 frame -> black bars top and bottom
    edge = F.crop_face(frame, F.Face(np.array([600, 440, 700, 540], np.float32), 1.0))
    assert edge.shape == (112, 112, 3)  # box past the frame edge is padded, not an error


def test_window_features_masks_frames_without_face():
    frames = np.stack([frame_at(0.0, 320, 240), frame_at(0.0, 320, 240, face=False), frame_at(0.4, 320, 240)])
    w = Window(0.0, 0.6, frames, np.array([0.0, 0.2, 0.4]), np.zeros(9600, np.float32))
    ft = window_features(w, F.get_detector())
    assert ft.face.shape == (3, 112, 112, 3) and ft.context.shape == (3, 112, 112, 3)
    # the middle frame is a one-frame gap inside the track: interpolated, so still masked True
    assert ft.face_mask.tolist() == [True, True, True]
    ft = window_features(Window(0, 0.2, frames[1:2], np.zeros(1), None), F.get_detector())
    assert ft.face_mask.tolist() == [False] and np.isnan(ft.boxes).all() and ft.face.max() == 0
    assert not ft.has_audio and ft.audio.size == 0


def test_face_image_asset_is_a_face():
    assert face_image().shape[2] == 3
