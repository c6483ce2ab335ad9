"""docs/SPEC.md 4: boxes parsed from both wandb forms and burned in as outlines."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import gpu_media
from gpu_media import PALETTE, BoxError, MediaError
from media_helpers import host
from spec_reference import draw_reference, outline_pixels

RED, GREEN, BLUE = (255, 0, 0), (0, 255, 0), (0, 0, 255)


NO_CLASS = object()  # mm(..., class_id=NO_CLASS): a box without class_id


def _make_box(position, domain, class_id, extra):
    box = {"position": position, **extra}
    if domain is not None:
        box["domain"] = domain
    if class_id is not NO_CLASS:
        box["class_id"] = class_id
    return box


def mm(min_x, max_x, min_y, max_y, domain="pixel", class_id=0, **extra):
    """A wandb box with position {minX, maxX, minY, maxY} (class_id 0 unless given)."""
    return _make_box({"minX": min_x, "maxX": max_x, "minY": min_y, "maxY": max_y}, domain, class_id, extra)


def mid(x, y, w, h, domain="pixel", class_id=0, **extra):
    """A wandb box with position {middle: [x, y], width, height} (class_id 0 unless given)."""
    return _make_box({"middle": [x, y], "width": w, "height": h}, domain, class_id, extra)


def key(*boxes, **spec):
    return {"box_data": list(boxes), **spec}


def blank(h, w, c=3, n=1, value=0):
    return np.full((n, h, w, c), value, np.uint8)


def draw(images, boxes, device, **kw):
    return host(gpu_media.draw_boxes(images, boxes, device=device, **kw))


def painted(out, orig):
    """(H,W) bool: pixels whose colour changed."""
    if orig.shape[-1] == 1:
        orig = np.repeat(orig, 3, axis=-1)
    return np.any(out != orig, axis=-1)


# --------------------------------------------------------------------------- basics


def test_error_type():
    assert issubclass(BoxError, MediaError) and issubclass(BoxError, ValueError)


def test_palette_is_twenty_rgb_colours():
    assert len(PALETTE) == 20
    for c in PALETTE:
        assert len(c) == 3 and all(isinstance(v, int) and 0 <= v <= 255 for v in c)
    assert len(set(map(tuple, PALETTE))) == 20


def test_hand_computed_outline(device):
    # minX 1, maxX 5, minY 1, maxY 4 -> x0=1, x1=4, y0=1, y1=3; t=1: a one-pixel frame.
    img = blank(6, 7)
    out = draw(img, [{"k": key(mm(1, 5, 1, 4, class_id=0))}], device, thickness=1, colors={0: RED})
    expected = np.zeros((6, 7), bool)
    expected[1, 1:5] = expected[3, 1:5] = True
    expected[1:4, 1] = expected[1:4, 4] = True
    assert out.shape == (1, 6, 7, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(painted(out[0], img[0]), expected)
    assert (out[0][expected] == RED).all()


def test_both_position_formats_give_the_same_pixels(device):
    img = np.random.default_rng(0).integers(0, 256, size=(1, 12, 14, 3)).astype(np.uint8)
    a = draw(img, [{"k": key(mm(2, 10, 3, 9, class_id=4))}], device)
    # middle (6, 6), width 8, height 6 -> minX 2, maxX 10, minY 3, maxY 9
    b = draw(img, [{"k": key(mid(6, 6, 8, 6, class_id=4))}], device)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], draw_reference(img[0], [(2, 3, 10, 9, 4)], 2, None))


def test_fraction_domain_scales_by_width_and_height(device):
    h, w = 10, 20
    img = blank(h, w)
    # fractions: x times W=20, y times H=10
    frac = draw(img, [{"k": key(mm(0.1, 0.6, 0.2, 0.9, domain=None))}], device, thickness=1)
    pix = draw(img, [{"k": key(mm(2, 12, 2, 9))}], device, thickness=1)
    np.testing.assert_array_equal(frac, pix)
    np.testing.assert_array_equal(frac[0], draw_reference(img[0], [(2, 2, 12, 9, 0)], 1, None))
    # any domain other than "pixel" means fractions
    other = draw(img, [{"k": key(mm(0.1, 0.6, 0.2, 0.9, domain="percent"))}], device, thickness=1)
    np.testing.assert_array_equal(other, pix)


def test_fraction_middle_form(device):
    h, w = 8, 16
    img = blank(h, w)
    # middle (0.5, 0.5), width 0.5, height 0.5 -> minX (0.5-0.25)*16=4, maxX 12, minY 2, maxY 6
    out = draw(img, [{"k": key(mid(0.5, 0.5, 0.5, 0.5, domain=None))}], device, thickness=1)
    np.testing.assert_array_equal(out[0], draw_reference(img[0], [(4, 2, 12, 6, 0)], 1, None))


def test_fraction_uses_each_images_own_size(device):
    imgs = [np.zeros((4, 8, 3), np.uint8), np.zeros((10, 6, 3), np.uint8)]
    box = key(mm(0.25, 0.75, 0.0, 1.0, domain=None, class_id=2))
    out = draw(imgs, [{"k": box}, {"k": box}], device, thickness=1)
    assert isinstance(out, list) and [o.shape for o in out] == [(4, 8, 3), (10, 6, 3)]
    np.testing.assert_array_equal(out[0], draw_reference(imgs[0], [(2, 0, 6, 4, 2)], 1, None))
    np.testing.assert_array_equal(out[1], draw_reference(imgs[1], [(1.5, 0, 4.5, 10, 2)], 1, None))


def test_per_image_wandb_dict_for_a_single_image(device):
    img = blank(6, 6)
    a = draw(img, {"k": key(mm(1, 5, 1, 5))}, device)
    b = draw(img, [{"k": key(mm(1, 5, 1, 5))}], device)
    np.testing.assert_array_equal(a, b)
    assert painted(a[0], img[0]).any()


def test_none_entries_draw_nothing(device):
    img = np.random.default_rng(1).integers(0, 256, size=(3, 5, 5, 3)).astype(np.uint8)
    out = draw(img, [None, {"k": key(mm(0, 5, 0, 5))}, None], device)
    np.testing.assert_array_equal(out[0], img[0])
    np.testing.assert_array_equal(out[2], img[2])
    assert painted(out[1], img[1]).any()
    np.testing.assert_array_equal(draw(img, None, device), img)


# --------------------------------------------------------------------------- docs/SPEC.md 4 step 2 rounding


def _columns_in_middle_row(out, orig, row):
    return set(np.flatnonzero(painted(out[0], orig[0])[row]).tolist())


@pytest.mark.parametrize(
    "min_x,max_x,x0,x1",
    [
        (1.5, 4.5, 2, 3),  # rint(1.5)=2, rint(4.5)=4 -> x1=3
        (2.5, 6.5, 2, 5),  # rint(2.5)=2 (half to even), rint(6.5)=6 -> x1=5
        (0.5, 3.5, 0, 3),  # rint(0.5)=0, rint(3.5)=4 -> x1=3
        (-0.5, 5.5, 0, 5),  # rint(-0.5)=-0, rint(5.5)=6 -> x1=5
        (1.49, 4.51, 1, 4),
        (3.4999, 7.5001, 3, 7),
    ],
)
def test_rounding_half_to_even_in_x(device, min_x, max_x, x0, x1):
    img = blank(8, 10)
    out = draw(img, [{"k": key(mm(min_x, max_x, 0, 8))}], device, thickness=1)
    # the middle row of a tall box holds only its left and right edges
    assert _columns_in_middle_row(out, img, 4) == {x0, x1}
    assert painted(out[0], img[0])[0].tolist() == [x0 <= x <= x1 for x in range(10)]


@pytest.mark.parametrize("min_y,max_y,y0,y1", [(1.5, 4.5, 2, 3), (2.5, 6.5, 2, 5), (0.5, 7.5, 0, 7)])
def test_rounding_half_to_even_in_y(device, min_y, max_y, y0, y1):
    img = blank(10, 8)
    out = draw(img, [{"k": key(mm(0, 8, min_y, max_y))}], device, thickness=1)
    col = painted(out[0], img[0])[:, 4]
    assert set(np.flatnonzero(col).tolist()) == {y0, y1}


def test_fraction_rounding_after_scaling(device):
    # minX 0.15*10 = 1.5 -> 2, maxX 0.45*10 = 4.5 -> 4 -> x1 = 3 (all exact in float64? check)
    assert 0.15 * 10 == 1.5 and 0.45 * 10 == 4.5
    img = blank(8, 10)
    out = draw(img, [{"k": key(mm(0.15, 0.45, 0.0, 1.0, domain=None))}], device, thickness=1)
    assert _columns_in_middle_row(out, img, 4) == {2, 3}


@pytest.mark.parametrize(
    "box",
    [
        mm(2.6, 3.4, 0, 6),  # x0=3, x1=2
        mm(3, 3, 0, 6),  # zero width
        mm(0, 6, 2.5, 2.5),  # zero height
        mm(0, 6, 1.6, 2.4),  # y0=2, y1=1
        mid(3, 3, 0.8, 4),  # minX 2.6, maxX 3.4
    ],
)
def test_empty_rounded_box_draws_nothing(device, box):
    img = np.random.default_rng(2).integers(0, 256, size=(1, 6, 6, 3)).astype(np.uint8)
    out = draw(img, [{"k": key(box)}], device, thickness=3)
    np.testing.assert_array_equal(out, img)


def test_one_pixel_box(device):
    img = blank(5, 5)
    out = draw(img, [{"k": key(mm(2, 3, 1, 2))}], device, thickness=1)
    expected = np.zeros((5, 5), bool)
    expected[1, 2] = True
    np.testing.assert_array_equal(painted(out[0], img[0]), expected)


# --------------------------------------------------------------------------- thickness


@pytest.mark.parametrize("t", [1, 2, 3, 4])
def test_thickness_grows_inward(device, t):
    img = blank(12, 12)
    out = draw(img, [{"k": key(mm(0, 10, 1, 11))}], device, thickness=t)
    m = painted(out[0], img[0])
    # box pixels: x 0..9, y 1..10; nothing outside it
    assert not m[0].any() and not m[11].any() and not m[:, 10:].any()
    for y in range(1, 11):
        for x in range(10):
            d = min(x - 0, 9 - x, y - 1, 10 - y)
            assert m[y, x] == (d < t), (x, y)
    np.testing.assert_array_equal(m, outline_pixels(12, 12, 0, 1, 10, 11, t))


@pytest.mark.parametrize("t", [2, 3, 10, 2**20])
def test_thickness_larger_than_box_fills_it(device, t):
    img = blank(8, 8)
    out = draw(img, [{"k": key(mm(2, 5, 3, 6))}], device, thickness=t)  # x 2..4, y 3..5
    expected = np.zeros((8, 8), bool)
    expected[3:6, 2:5] = True
    np.testing.assert_array_equal(painted(out[0], img[0]), expected)


def test_default_thickness_is_two(device):
    img = blank(10, 10)
    np.testing.assert_array_equal(
        draw(img, [{"k": key(mm(0, 10, 0, 10))}], device),
        draw(img, [{"k": key(mm(0, 10, 0, 10))}], device, thickness=2),
    )
    m = painted(draw(img, [{"k": key(mm(0, 10, 0, 10))}], device)[0], img[0])
    assert m[1, 5] and not m[2, 5] and m[5, 8] and not m[5, 7]


# --------------------------------------------------------------------------- clipping to the image


def test_box_partly_outside(device):
    img = blank(6, 6)
    out = draw(img, [{"k": key(mm(-3, 4, -2, 3))}], device, thickness=1)  # x -3..3, y -2..2
    expected = np.zeros((6, 6), bool)
    expected[2, 0:4] = True  # bottom edge y=2
    expected[0:3, 3] = True  # right edge x=3
    np.testing.assert_array_equal(painted(out[0], img[0]), expected)


@pytest.mark.parametrize("box", [mm(10, 20, 0, 5), mm(-9, -1, 0, 5), mm(0, 5, 6, 9), mm(0, 5, -30, 0)])
def test_box_fully_outside_draws_nothing(device, box):
    img = np.random.default_rng(3).integers(0, 256, size=(1, 6, 6, 3)).astype(np.uint8)
    np.testing.assert_array_equal(draw(img, [{"k": key(box)}], device, thickness=2), img)


def test_huge_box_draws_only_its_in_image_part(device):
    img = blank(6, 8)
    out = draw(img, [{"k": key(mm(-1e12, 1e12, 1, 4))}], device, thickness=1)
    expected = np.zeros((6, 8), bool)
    expected[1, :] = expected[3, :] = True  # top y=1, bottom y=3; side edges far away
    np.testing.assert_array_equal(painted(out[0], img[0]), expected)
    # enclosing the whole image in both directions: nothing is on the outline
    out = draw(img, [{"k": key(mm(-1e12, 1e12, -1e12, 1e12))}], device, thickness=4)
    np.testing.assert_array_equal(out, img)
    # beyond 2**40 and in fractions too
    out = draw(img, [{"k": key(mm(-1e15, 0.5, -3e14, 1e13, domain=None))}], device, thickness=1)
    expected = np.zeros((6, 8), bool)
    expected[:, 3] = True  # maxX 0.5*8 = 4 -> x1 = 3
    np.testing.assert_array_equal(painted(out[0], img[0]), expected)


# --------------------------------------------------------------------------- overlap and colour


def test_later_box_wins_within_a_key(device):
    img = blank(6, 6)
    boxes = [{"k": key(mm(0, 6, 0, 6, class_id=1), mm(0, 6, 0, 6, class_id=2))}]
    out = draw(img, boxes, device, colors={1: RED, 2: GREEN})
    m = painted(out[0], img[0])
    assert m.any() and (out[0][m] == GREEN).all()
    boxes = [{"k": key(mm(0, 6, 0, 6, class_id=2), mm(0, 6, 0, 6, class_id=1))}]
    out = draw(img, boxes, device, colors={1: RED, 2: GREEN})
    assert (out[0][m] == RED).all()


def test_later_key_wins_in_the_order_given(device):
    img = blank(6, 6)
    # "z" before "a": key order is the dict's order, not alphabetical
    boxes = [{"z": key(mm(0, 6, 0, 6, class_id=1)), "a": key(mm(0, 4, 0, 4, class_id=2))}]
    out = draw(img, boxes, device, thickness=1, colors={1: RED, 2: GREEN})
    ref = draw_reference(img[0], [(0, 0, 6, 6, 1), (0, 0, 4, 4, 2)], 1, {1: RED, 2: GREEN})
    np.testing.assert_array_equal(out[0], ref)
    assert tuple(out[0][0, 0]) == GREEN and tuple(out[0][0, 5]) == RED and tuple(out[0][3, 1]) == GREEN
    boxes = [{"a": key(mm(0, 4, 0, 4, class_id=2)), "z": key(mm(0, 6, 0, 6, class_id=1))}]
    out = draw(img, boxes, device, thickness=1, colors={1: RED, 2: GREEN})
    assert tuple(out[0][0, 0]) == RED and tuple(out[0][3, 1]) == GREEN


def test_colours_from_colors_and_palette(device):
    img = blank(4, 30)
    boxes = [
        mm(0, 5, 0, 4, class_id=3),
        mm(5, 10, 0, 4, class_id=23),  # PALETTE[23 % 20]
        mm(10, 15, 0, 4),  # class 0
        mm(15, 20, 0, 4, class_id=7),  # from colors
        mm(20, 25, 0, 4, class_id=40),  # 40 % 20 == 0
        mm(25, 30, 0, 4, class_id=19),
    ]
    out = draw(img, [{"k": key(*boxes)}], device, thickness=1, colors={7: (1, 2, 3)})
    assert tuple(out[0][0, 0]) == tuple(PALETTE[3])
    assert tuple(out[0][0, 5]) == tuple(PALETTE[3])
    assert tuple(out[0][0, 10]) == tuple(PALETTE[0])
    assert tuple(out[0][0, 15]) == (1, 2, 3)
    assert tuple(out[0][0, 20]) == tuple(PALETTE[0])
    assert tuple(out[0][0, 25]) == tuple(PALETTE[19])


def test_colors_for_class_zero(device):
    img = blank(4, 4)
    out = draw(img, [{"k": key(mm(0, 4, 0, 4))}], device, thickness=1, colors={0: BLUE})
    assert tuple(out[0][0, 0]) == BLUE


def test_box_without_class_id_is_an_error(device):
    # wandb raises KeyError('class_id') for it (tests/test_wandb_cases.py); ours is a BoxError naming the box
    img = blank(5, 5, n=2)
    bad = mm(0, 1, 0, 1, class_id=NO_CLASS)
    with pytest.raises(BoxError, match=r"^image 1, box key 'k', box 1: A box needs a class_id") as info:
        draw(img, [None, {"k": key(mm(0, 1, 0, 1), bad)}], device)
    assert (info.value.index, info.value.key, info.value.item) == (1, "k", bad)
    # with class_labels too (wandb then accepts it; docs/SPEC.md 4 requires class_id in both forms)
    with pytest.raises(BoxError, match=r"^image 0, box key 'k', box 0: A box needs a class_id"):
        draw(img, [{"k": key(bad, class_labels={0: "a"})}, None], device)
    # every position is checked first, as wandb validates before it builds its labels
    with pytest.raises(BoxError, match=r"^image 0, box key 'k', box 1: Each box must contain a position"):
        draw(img, [{"k": key(bad, {"position": {}})}, None], device)
    # the batched form: a missing class_id column names the first box and its image
    with pytest.raises(BoxError, match=r"^image 1, box key 'p', box 0: A box needs a class_id") as info:
        draw(img, {"p": {"xyxy": [[0, 0, 1, 1], [0, 0, 2, 2]], "image_index": [1, 0]}}, device)
    assert (info.value.index, info.value.key) == (1, "p")
    # an empty batched set needs none
    np.testing.assert_array_equal(draw(img, {"p": {"xyxy": np.zeros((0, 4)), "image_index": []}}, device), img)


def test_negative_class_id_uses_python_modulo(device):
    img = blank(4, 4)
    out = draw(img, [{"k": key(mm(0, 4, 0, 4, class_id=-1))}], device, thickness=1)
    assert tuple(out[0][0, 0]) == tuple(PALETTE[-1 % 20])


def test_numpy_class_id_and_colour_values(device):
    img = blank(4, 4)
    out = draw(img, [{"k": key(mm(0, 4, 0, 4, class_id=np.int64(5)))}], device, thickness=1,
               colors={np.int32(5): np.array([9, 8, 7], np.uint8)})
    assert tuple(out[0][0, 0]) == (9, 8, 7)


# --------------------------------------------------------------------------- channels


def test_l_images_become_rgb(device):
    img = np.arange(36, dtype=np.uint8).reshape(1, 6, 6, 1)
    out = draw(img, [{"k": key(mm(1, 5, 1, 5, class_id=2))}], device, thickness=1)
    assert out.shape == (1, 6, 6, 3)
    np.testing.assert_array_equal(out[0], draw_reference(img[0], [(1, 1, 5, 5, 2)], 1, None))
    # a pixel off the outline is the grey value in all three channels
    assert tuple(out[0][0, 0]) == (0, 0, 0) and tuple(out[0][2, 2]) == (14, 14, 14)


def test_rgba_outline_alpha_is_255_and_other_alpha_kept(device):
    rng = np.random.default_rng(4)
    img = rng.integers(0, 256, size=(1, 7, 7, 4)).astype(np.uint8)
    img[..., 3] = rng.integers(0, 200, size=(1, 7, 7))
    out = draw(img, [{"k": key(mm(1, 6, 1, 6, class_id=1))}], device, thickness=1)
    assert out.shape == (1, 7, 7, 4)
    m = outline_pixels(7, 7, 1, 1, 6, 6, 1)
    assert (out[0][m, 3] == 255).all()
    np.testing.assert_array_equal(out[0][~m], img[0][~m])
    assert (out[0][m, :3] == PALETTE[1]).all()
    np.testing.assert_array_equal(out[0], draw_reference(img[0], [(1, 1, 6, 6, 1)], 1, None))


def test_input_is_not_modified(device):
    img = np.random.default_rng(5).integers(0, 256, size=(2, 6, 6, 4)).astype(np.uint8)
    before = img.copy()
    out = draw(img, [{"k": key(mm(0, 6, 0, 6))}, {"k": key(mm(1, 3, 1, 3))}], device)
    np.testing.assert_array_equal(img, before)
    assert not np.array_equal(out, img)
    listed = [img[0].copy(), img[1, :4, :5].copy()]
    saved = [a.copy() for a in listed]
    draw(listed, [{"k": key(mm(0, 6, 0, 6))}, None], device)
    for a, b in zip(listed, saved):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- the batched form


def test_batched_form_equals_the_list_form(device):
    rng = np.random.default_rng(6)
    img = rng.integers(0, 256, size=(3, 9, 11, 3)).astype(np.uint8)
    batched = {
        "pred": {
            "xyxy": np.array([[1, 1, 8, 7], [0.5, 2.5, 10.5, 8.5], [2, 2, 5, 5], [-2, 3, 4, 20]], np.float32),
            "image_index": np.array([2, 0, 2, 0]),
            "class_id": np.array([3, 1, 25, 1]),
            "scores": {"conf": np.array([0.9, 0.5, 0.1, 0.7])},
            "domain": "pixel",
        },
        "gt": {
            "xyxy": np.array([[0.1, 0.1, 0.9, 0.5], [0.0, 0.0, 1.0, 1.0]]),
            "image_index": np.array([0, 1]),
            "class_id": np.array([2, 4]),
            "domain": "fraction",
        },
    }
    listed = [
        {"pred": key(mm(0.5, 10.5, 2.5, 8.5, class_id=1), mm(-2, 4, 3, 20, class_id=1)),
         "gt": key(mm(0.1, 0.9, 0.1, 0.5, domain=None, class_id=2))},
        {"gt": key(mm(0.0, 1.0, 0.0, 1.0, domain=None, class_id=4))},
        {"pred": key(mm(1, 8, 1, 7, class_id=3), mm(2, 5, 2, 5, class_id=25))},
    ]
    colors = {25: (5, 6, 7)}
    a = draw(img, batched, device, thickness=1, colors=colors)
    b = draw(img, listed, device, thickness=1, colors=colors)
    np.testing.assert_array_equal(a, b)
    # and both follow docs/SPEC.md 4: fractions times W=11 / H=9, later keys over earlier ones
    ref0 = draw_reference(img[0], [(0.5, 2.5, 10.5, 8.5, 1), (-2, 3, 4, 20, 1),
                                   (0.1 * 11, 0.1 * 9, 0.9 * 11, 0.5 * 9, 2)], 1, colors)
    np.testing.assert_array_equal(a[0], ref0)
    np.testing.assert_array_equal(a[2], draw_reference(img[2], [(1, 1, 8, 7, 3), (2, 2, 5, 5, 25)], 1, colors))


def test_batched_form_defaults(device):
    img = blank(6, 6)
    # no domain -> pixel; one image -> image_index optional
    out = draw(img, {"k": {"xyxy": [[1, 1, 5, 5]], "class_id": [0]}}, device, thickness=1)
    np.testing.assert_array_equal(out[0], draw_reference(img[0], [(1, 1, 5, 5, 0)], 1, None))


# --------------------------------------------------------------------------- errors: list form


def err3(box, k="k"):
    """A 3-image batch whose image 2 holds ``box`` under key ``k``."""
    return blank(5, 5, n=3), [None, {"ok": key(mm(0, 1, 0, 1))}, {k: key(mm(0, 1, 0, 1), box)}]


BOX = r"image 2, box key 'k', box 1: "


@pytest.mark.parametrize(
    "box",
    [
        {"domain": "pixel"},
        {"position": None},
        {"position": [1, 2, 3, 4]},
        "not a box",
    ],
    ids=["missing", "none", "list", "str"],
)
def test_missing_position(device, box):
    img, boxes = err3(box)
    with pytest.raises(BoxError, match=BOX + "Each box must contain a position with: middle, width, and height "
                       "or minX, maxX, minY, maxY"):
        draw(img, boxes, device)


@pytest.mark.parametrize(
    "position",
    [
        {"minX": 0, "maxX": 1, "minY": 0},
        {"minX": 0, "maxX": 1, "minY": 0, "maxy": 1},
        {"minX": "0", "maxX": 1, "minY": 0, "maxY": 1},
        {"minX": True, "maxX": 1, "minY": 0, "maxY": 1},
        {"middle": [1, 2, 3], "width": 1, "height": 1},
        {"middle": [1], "width": 1, "height": 1},
        {"middle": [1, 2], "width": 1},
        {"middle": [1, 2], "width": "1", "height": 1},
        {"middle": ["a", 2], "width": 1, "height": 1},
        {"minX": 1j, "maxX": 1, "minY": 0, "maxY": 1},
        {"middle": [1, 2], "width": 1, "height": complex(1, 0)},
        {"x": 1, "y": 2, "w": 3, "h": 4},
        {},
    ],
)
def test_bad_position_keys(device, position):
    img, boxes = err3({"position": position})
    with pytest.raises(BoxError, match=BOX + "Each box must contain a position"):
        draw(img, boxes, device)


@pytest.mark.parametrize(
    "box",
    [
        mm(float("nan"), 2, 0, 1),
        mm(0, float("inf"), 0, 1),
        mm(0, 1, -float("inf"), 1),
        mm(0, 1, 0, float("nan")),
        mid(float("nan"), 1, 1, 1),
        mid(1, 1, float("inf"), 1),
        mid(1, float("inf"), 1, 1),
        mm(float("nan"), 2, 0, 1, domain=None),
    ],
)
def test_non_finite_coordinates(device, box):
    img, boxes = err3(box)
    with pytest.raises(BoxError, match=BOX + "box coordinates must be finite"):
        draw(img, boxes, device)


def test_min_greater_than_max(device):
    img, boxes = err3(mm(5, 3, 0, 1))
    with pytest.raises(BoxError, match=BOX + r"minX 5(\.0)? > maxX 3(\.0)?"):
        draw(img, boxes, device)
    img, boxes = err3(mm(0, 1, 2.5, 2))
    with pytest.raises(BoxError, match=BOX + r"minY 2\.5 > maxY 2(\.0)?"):
        draw(img, boxes, device)
    img, boxes = err3(mid(3, 3, -2, 1))  # negative width: minX 4 > maxX 2
    with pytest.raises(BoxError, match=BOX + r"minX 4(\.0)? > maxX 2(\.0)?"):
        draw(img, boxes, device)


@pytest.mark.parametrize("cid", [1.0, "1", None, True, 1.5])
def test_class_id_must_be_an_integer(device, cid):
    img, boxes = err3(mm(0, 1, 0, 1, class_id=cid))
    with pytest.raises(BoxError, match=BOX + "A box's class_id must be an integer"):
        draw(img, boxes, device)


@pytest.mark.parametrize(
    "scores,msg",
    [
        ([0.5], "Box scores must be a dictionary"),
        (0.5, "Box scores must be a dictionary"),
        ({1: 0.5}, "A score key must be a string"),
        ({"conf": "high"}, "A score value must be a number"),
        ({"conf": None}, "A score value must be a number"),
        ({"conf": [0.5]}, "A score value must be a number"),
    ],
)
def test_bad_scores(device, scores, msg):
    img, boxes = err3(mm(0, 1, 0, 1, scores=scores))
    with pytest.raises(BoxError, match=BOX + msg):
        draw(img, boxes, device)


def test_good_scores_and_caption_are_accepted(device):
    img = blank(4, 4)
    box = mm(0, 4, 0, 4, class_id=1, scores={"conf": 0.5, "iou": np.float32(0.25), "n": 3}, box_caption="car")
    out = draw(img, [{"k": key(box, class_labels={1: "car"})}], device, thickness=1)
    np.testing.assert_array_equal(out[0], draw_reference(img[0], [(0, 0, 4, 4, 1)], 1, None))


@pytest.mark.parametrize("caption", [3, None, ["car"], b"car"])
def test_caption_must_be_a_string(device, caption):
    img, boxes = err3(mm(0, 1, 0, 1, box_caption=caption))
    with pytest.raises(BoxError, match=BOX + "A box's caption must be a string"):
        draw(img, boxes, device)


@pytest.mark.parametrize(
    "labels", [{"car": "car"}, {1: 2}, {None: "x"}, {1: None}, {True: "x"}, ["car"]],
    ids=["str-key", "int-value", "none-key", "none-value", "bool-key", "list"],
)
def test_class_labels_must_be_numbers_to_strings(device, labels):
    img = blank(5, 5, n=3)
    boxes = [None, None, {"k": key(mm(0, 1, 0, 1), class_labels=labels)}]
    with pytest.raises(BoxError, match=r"image 2, box key 'k'.*class_labels must be a dictionary"):
        draw(img, boxes, device)


def test_class_labels_key_must_be_integral(device):
    img = blank(5, 5, n=3)
    boxes = [None, None, {"k": key(mm(0, 1, 0, 1), class_labels={2.5: "x"})}]
    with pytest.raises(BoxError, match=r"image 2, box key 'k'.*class_labels key 2\.5 is not an integer"):
        draw(img, boxes, device)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")], ids=["nan", "inf"])
def test_non_finite_class_labels_key_is_a_box_error(device, bad):
    img = blank(5, 5)
    with pytest.raises(BoxError, match=r"image 0, box key 'k'.*class_labels"):
        draw(img, [{"k": key(mm(0, 1, 0, 1), class_labels={bad: "x"})}], device)


def test_box_data_must_be_a_list(device):
    img = blank(5, 5, n=2)
    with pytest.raises(BoxError, match=r"image 1, box key 'k': Boxes must be a list"):
        draw(img, [None, {"k": {"box_data": (mm(0, 1, 0, 1),)}}], device)
    with pytest.raises(BoxError, match=r"image 1, box key 'k'.*box_data"):
        draw(img, [None, {"k": {"boxes": [mm(0, 1, 0, 1)]}}], device)


@pytest.mark.parametrize("given", [1, 3])
def test_wrong_number_of_list_entries(device, given):
    img = blank(5, 5, n=2)
    with pytest.raises(BoxError, match=rf"boxes: {given} entries for a batch of 2 images"):
        draw(img, [None] * given, device)


def test_per_image_dict_for_a_batch_is_rejected(device):
    with pytest.raises(BoxError, match=r"per-image form.*batch of 2 images"):
        draw(blank(5, 5, n=2), {"k": key(mm(0, 1, 0, 1))}, device)


def test_first_bad_box_is_named(device):
    img = blank(5, 5, n=2)
    boxes = [{"a": key(mm(0, 1, 0, 1)), "b": key(mm(0, 1, 0, 1), mm(0, 1, 0, 1), mm(3, 2, 0, 1), mm(9, 1, 0, 1))},
             {"a": key(mm(4, 1, 0, 1))}]
    with pytest.raises(BoxError, match=r"image 0, box key 'b', box 2: minX 3(\.0)? > maxX 2(\.0)?"):
        draw(img, boxes, device)


def test_middle_as_numpy_array(device):
    img = blank(6, 6)
    box = {"position": {"middle": np.array([3.0, 3.0]), "width": 4, "height": 4}, "domain": "pixel", "class_id": 0}
    out = draw(img, [{"k": key(box)}], device, thickness=1)
    np.testing.assert_array_equal(out[0], draw_reference(img[0], [(1, 1, 5, 5, 0)], 1, None))


# --------------------------------------------------------------------------- errors: batched form


def test_image_index_out_of_range(device):
    img = blank(5, 5, n=2)
    spec = {"xyxy": np.zeros((3, 4)), "image_index": np.array([0, 1, 2])}
    with pytest.raises(BoxError, match=r"box key 'k', box 2: image_index 2 is out of range for a batch of 2 images"):
        draw(img, {"k": spec}, device)
    spec = {"xyxy": np.zeros((2, 4)), "image_index": np.array([-1, 0])}
    with pytest.raises(BoxError, match=r"box key 'k', box 0: image_index -1 is out of range"):
        draw(img, {"k": spec}, device)


def test_image_index_required_for_a_batch(device):
    with pytest.raises(BoxError, match=r"box key 'k'.*image_index.*batch of 2 images"):
        draw(blank(5, 5, n=2), {"k": {"xyxy": np.zeros((1, 4))}}, device)


@pytest.mark.parametrize("shape", [(4,), (2, 3), (2, 4, 1), (1, 5)])
def test_xyxy_of_wrong_shape(device, shape):
    img = blank(5, 5)
    with pytest.raises(BoxError, match=r"box key 'k': xyxy must be a numeric \(M, 4\) array, got shape "
                       + re_shape(shape)):
        draw(img, {"k": {"xyxy": np.zeros(shape)}}, device)


def re_shape(shape):
    return r"\(" + r", ".join(str(s) for s in shape) + (r",\)" if len(shape) == 1 else r"\)")


def test_columns_of_wrong_length(device):
    img = blank(5, 5, n=2)
    spec = {"xyxy": np.zeros((2, 4)), "image_index": np.array([0, 1, 1])}
    with pytest.raises(BoxError, match=r"box key 'k': image_index must have shape \(2,\), got \(3,\)"):
        draw(img, {"k": spec}, device)
    spec = {"xyxy": np.zeros((2, 4)), "image_index": np.array([0, 1]), "class_id": np.array([1])}
    with pytest.raises(BoxError, match=r"box key 'k': class_id must have shape \(2,\), got \(1,\)"):
        draw(img, {"k": spec}, device)
    spec = {"xyxy": np.zeros((2, 4)), "image_index": np.array([0, 1]), "class_id": np.array([1.5, 2])}
    with pytest.raises(BoxError, match=r"box key 'k': class_id must hold integers"):
        draw(img, {"k": spec}, device)


def test_batched_non_finite_and_min_max(device):
    img = blank(5, 5, n=2)
    spec = {"xyxy": np.array([[0, 0, 1, 1], [0, np.nan, 1, 1]]), "image_index": np.array([0, 1])}
    with pytest.raises(BoxError, match=r"image 1, box key 'k', box 1: box coordinates must be finite"):
        draw(img, {"k": spec}, device)
    spec = {"xyxy": np.array([[0, 0, 1, 1], [3, 0, 1, 1]]), "image_index": np.array([1, 1])}
    with pytest.raises(BoxError, match=r"image 1, box key 'k', box 1: minX 3(\.0)? > maxX 1(\.0)?"):
        draw(img, {"k": spec}, device)


def test_batched_scores_not_a_dict(device):
    spec = {"xyxy": np.zeros((1, 4)), "scores": [0.5]}
    with pytest.raises(BoxError, match=r"box key 'k': scores must be a dictionary"):
        draw(blank(5, 5), {"k": spec}, device)


# --------------------------------------------------------------------------- errors: colors, thickness


@pytest.mark.parametrize(
    "rgb", [(256, 0, 0), (-1, 0, 0), (1, 2), (1, 2, 3, 4), None, "red", ("a", "b", "c")],
)
def test_bad_colors(device, rgb):
    with pytest.raises(BoxError, match=r"colors\[1\] must be an \(r, g, b\) triple of integers in \[0, 255\]"):
        draw(blank(5, 5), [{"k": key(mm(0, 1, 0, 1, class_id=1))}], device, colors={1: rgb})


def test_bad_colors_are_rejected_without_boxes(device):
    with pytest.raises(BoxError, match=r"colors\[3\]"):
        draw(blank(5, 5), None, device, colors={3: (0, 0, 300)})


@pytest.mark.parametrize("colors", [[(1, 2, 3)], (1, 2, 3), {"red": (255, 0, 0)}], ids=["list", "tuple", "str-key"])
def test_bad_colors_container_is_a_box_error(device, colors):
    with pytest.raises(BoxError, match=r"colors"):
        draw(blank(5, 5), [{"k": key(mm(0, 1, 0, 1, class_id=1))}], device, colors=colors)


def test_fractional_colors_key_does_not_paint_another_class(device):
    img = blank(4, 4)
    try:
        out = draw(img, [{"k": key(mm(0, 4, 0, 4, class_id=1))}], device, thickness=1, colors={1.5: (1, 2, 3)})
    except BoxError:
        return  # rejecting the key is fine too
    np.testing.assert_array_equal(out[0], draw_reference(img[0], [(0, 0, 4, 4, 1)], 1, None))


def test_fractional_colour_component_is_rejected(device):
    with pytest.raises(BoxError, match=r"colors\[1\]"):
        draw(blank(5, 5), [{"k": key(mm(0, 1, 0, 1, class_id=1))}], device, colors={1: (1.7, 2, 3)})


@pytest.mark.parametrize("t", [0, -1, 1.5, 2.0, True, "2", None])
def test_bad_thickness(device, t):
    with pytest.raises(BoxError, match=r"thickness must be an integer >= 1 \(pixels\), got " + re_repr(t)):
        draw(blank(5, 5), [{"k": key(mm(0, 1, 0, 1))}], device, thickness=t)


def re_repr(v):
    import re

    return re.escape(repr(v))


# --------------------------------------------------------------------------- property: SPEC reference

_coord_pixel = st.one_of(
    st.integers(-4, 16).map(lambda v: v / 2),  # half-integers: rint's tie cases
    st.floats(-4, 16, allow_nan=False, allow_infinity=False),
)
_coord_fraction = st.one_of(
    st.integers(-4, 28).map(lambda v: v / 24),
    st.floats(-0.3, 1.3, allow_nan=False, allow_infinity=False),
)
_rgb = st.tuples(st.integers(0, 255), st.integers(0, 255), st.integers(0, 255))


@st.composite
def _box(draw_):
    """(wandb box dict, pixel bounds as a function of (H, W), class id used for colour)."""
    pixel = draw_(st.booleans())
    coord = _coord_pixel if pixel else _coord_fraction
    cid = draw_(st.integers(0, 45))
    a, b = sorted(draw_(st.tuples(coord, coord)))
    c, d = sorted(draw_(st.tuples(coord, coord)))
    if draw_(st.booleans()):
        pos = {"minX": a, "maxX": b, "minY": c, "maxY": d}
        bounds = (a, c, b, d)
    else:
        x, y = (a + b) / 2, (c + d) / 2
        w, h = b - a, d - c
        pos = {"middle": [x, y], "width": w, "height": h}
        bounds = (x - w / 2, y - h / 2, x + w / 2, y + h / 2)  # docs/SPEC.md 4 step 1
    box = {"position": pos, "class_id": cid}
    if pixel:
        box["domain"] = "pixel"

    def to_px(hh, ww):
        if pixel:
            return bounds
        x0, y0, x1, y1 = bounds
        return (x0 * ww, y0 * hh, x1 * ww, y1 * hh)  # fractions times W (x), H (y)

    return box, to_px, cid


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    n=st.integers(1, 2),
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    c=st.sampled_from([1, 3, 4]),
    t=st.integers(1, 4),
    seed=st.integers(0, 2**32 - 1),
    per_image=st.lists(st.lists(st.lists(_box(), max_size=3), max_size=2), min_size=2, max_size=2),
    colors=st.one_of(st.none(), st.dictionaries(st.integers(0, 45), _rgb, max_size=6)),
)
def test_draw_boxes_matches_spec_reference(device, n, h, w, c, t, seed, per_image, colors):
    img = np.random.default_rng(seed).integers(0, 256, size=(n, h, w, c)).astype(np.uint8)
    boxes = []
    for i in range(n):
        keys = per_image[i]
        boxes.append({f"k{j}": key(*[b for b, _, _ in bl]) for j, bl in enumerate(keys)} if keys else None)
    before = img.copy()
    out = draw(img, boxes, device, thickness=t, colors=colors)
    np.testing.assert_array_equal(img, before)
    assert out.shape == (n, h, w, 3 if c == 1 else c) and out.dtype == np.uint8
    for i in range(n):
        ref_boxes = [(*to_px(h, w), cid) for bl in per_image[i] for _, to_px, cid in bl]
        np.testing.assert_array_equal(out[i], draw_reference(img[i], ref_boxes, t, colors))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    h=st.integers(1, 12),
    w=st.integers(1, 12),
    c=st.sampled_from([1, 3, 4]),
    t=st.integers(1, 4),
    fraction=st.booleans(),
    data=st.data(),
)
def test_batched_form_matches_spec_reference(device, h, w, c, t, fraction, data):
    n = 2
    coord = _coord_fraction if fraction else _coord_pixel
    m = data.draw(st.integers(0, 5))
    rows = []
    for _ in range(m):
        a, b = sorted(data.draw(st.tuples(coord, coord)))
        cc, d = sorted(data.draw(st.tuples(coord, coord)))
        rows.append((a, cc, b, d))
    idx = data.draw(st.lists(st.integers(0, n - 1), min_size=m, max_size=m))
    cid = data.draw(st.lists(st.integers(0, 45), min_size=m, max_size=m))
    img = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).integers(
        0, 256, size=(n, h, w, c)).astype(np.uint8)
    spec = {"xyxy": np.array(rows, np.float64).reshape(m, 4), "image_index": np.array(idx, np.int64),
            "class_id": np.array(cid, np.int64), "domain": "fraction" if fraction else "pixel"}
    out = draw(img, {"k": spec}, device, thickness=t)
    for i in range(n):
        sx, sy = (w, h) if fraction else (1, 1)
        ref = [(r[0] * sx, r[1] * sy, r[2] * sx, r[3] * sy, k) for r, j, k in zip(rows, idx, cid) if j == i]
        np.testing.assert_array_equal(out[i], draw_reference(img[i], ref, t, None))


# --------------------------------------------------------------------------- strict JSON, fields, class id range


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), np.float32("nan")],
                         ids=["nan", "inf", "-inf", "np-nan"])
def test_list_form_non_finite_score_is_an_error_as_in_the_batched_form(device, bad):
    # NaN/Infinity are not JSON: boxes2D.json would be a file JSON.parse rejects (docs/SPEC.md 4)
    img, boxes = err3(mm(0, 1, 0, 1, scores={"ok": 0.5, "conf": bad}))
    with pytest.raises(BoxError, match=BOX + r"score 'conf' must be finite, got -?(nan|inf)") as info:
        draw(img, boxes, device)
    assert (info.value.index, info.value.key) == (2, "k")
    spec = {"xyxy": [[0, 0, 1, 1]], "class_id": [0], "image_index": [2], "scores": {"conf": [bad]}}
    with pytest.raises(BoxError, match=r"image 2, box key 'k', box 0: score 'conf' must be finite"):
        draw(img, {"k": spec}, device)


@pytest.mark.parametrize("extra,why", [
    ({"note": float("nan")}, "NaN and infinite numbers are not JSON"),
    ({"note": [1.0, float("inf")]}, "NaN and infinite numbers are not JSON"),
    ({"note": {1, 2}}, "not JSON serializable"),
    ({"scores": {"c": 1j}}, "not JSON serializable"),  # wandb's own score rule takes a complex number
], ids=["nan-field", "inf-in-list", "set", "complex-score"])
def test_list_form_box_that_is_not_strict_json_is_an_error(device, extra, why):
    img, boxes = err3(mm(0, 1, 0, 1, **extra))
    with pytest.raises(BoxError, match=BOX + "the box cannot be written as JSON .*" + why):
        draw(img, boxes, device)


@pytest.mark.parametrize("field", ["score", "box_caption", "caption", "class_ids", "labels"])
def test_batched_form_unknown_field_is_an_error_naming_it(device, field):
    spec = {"xyxy": [[0, 0, 1, 1]], "class_id": [0], field: [0.5]}
    with pytest.raises(BoxError, match=rf"box key 'k': unknown field '{field}' of the batched form \(its fields: "
                       r"xyxy, image_index, class_id, scores, captions, domain, class_labels, colors\)") as info:
        draw(blank(5, 5), {"k": spec}, device)
    assert (info.value.key, info.value.item) == ("k", field)


@pytest.mark.parametrize("domain", ["pixels", "percent", None, 1])
def test_batched_form_domain_is_pixel_or_fraction(device, domain):
    spec = {"xyxy": [[0, 0, 1, 1]], "class_id": [0], "domain": domain}
    with pytest.raises(BoxError, match=r"box key 'k': domain must be 'pixel' or 'fraction', got "):
        draw(blank(5, 5), {"k": spec}, device)


def test_batched_captions_are_box_captions():
    spec = {"xyxy": [[0, 0, 2, 2], [1, 1, 3, 3], [0, 0, 1, 1]], "image_index": [1, 0, 1], "class_id": [4, 5, 4],
            "scores": {"conf": [0.5, 0.25, 0.75]}, "captions": np.array(["car 1", "bus", None], dtype=object),
            "class_labels": {4: "car", 5: "bus"}}
    table = gpu_media.boxes.parse_boxes({"k": spec}, [(4, 4), (4, 4)])
    assert [b["box_caption"] for b in table.per_image[0]["k"]["box_data"]] == ["bus"]
    assert [b["box_caption"] for b in table.per_image[1]["k"]["box_data"]] == ["car 1", "car 0.75"]  # None: default
    table = gpu_media.boxes.parse_boxes({"k": {**spec, "captions": ["a", "b", "c"]}}, [(4, 4), (4, 4)])
    assert [b["box_caption"] for b in table.per_image[1]["k"]["box_data"]] == ["a", "c"]


@pytest.mark.parametrize("captions,match", [
    (["a"], r"box key 'k': captions must have shape \(2,\), got \(1,\)"),
    ("ab", r"box key 'k': captions must be a list of 2 strings \(None for the default caption\), got str"),
    (np.array([1, 2]), r"box key 'k': captions must be a list of 2 strings"),
    (["a", 3], r"box key 'k', box 1: a caption must be a string or None, got int"),
    (["a", b"b"], r"box key 'k', box 1: a caption must be a string or None, got bytes"),
])
def test_batched_captions_errors(device, captions, match):
    spec = {"xyxy": [[0, 0, 1, 1], [0, 0, 2, 2]], "class_id": [0, 1], "captions": captions}
    with pytest.raises(BoxError, match=match):
        draw(blank(5, 5), {"k": spec}, device)


MAX_ID = 2**53 - 1  # JavaScript's Number.MAX_SAFE_INTEGER: the viewer reads larger ids back as other ids


@pytest.mark.parametrize("cid", [MAX_ID, -MAX_ID, -3, 0])
def test_class_ids_within_2_53_are_drawn_in_their_palette_colour(device, cid):
    img = blank(4, 4)
    expected = np.full((4, 4, 3), 0, np.uint8)
    expected[[0, 3], :] = PALETTE[cid % 20]
    expected[:, [0, 3]] = PALETTE[cid % 20]
    expected[1:3, 1:3] = 0
    out = draw(img, [{"k": key(mm(0, 4, 0, 4, class_id=cid))}], device, thickness=1)
    np.testing.assert_array_equal(out[0], expected)
    for dtype in (np.int64, np.float64) if abs(cid) < 2**52 else (np.int64,):
        spec = {"xyxy": [[0, 0, 4, 4]], "class_id": np.array([cid], dtype)}
        np.testing.assert_array_equal(draw(img, {"k": spec}, device, thickness=1)[0], expected)


@pytest.mark.parametrize("cid", [2**53, -(2**53), 2**63 - 1, 2**70], ids=["2**53", "-2**53", "2**63-1", "2**70"])
def test_list_form_class_id_beyond_2_53_is_an_error(device, cid):
    img, boxes = err3(mm(0, 1, 0, 1, class_id=cid))
    with pytest.raises(BoxError, match=BOX + rf"class id {cid} is outside \[-\(2\*\*53 - 1\), 2\*\*53 - 1\]"):
        draw(img, boxes, device)


@pytest.mark.parametrize("column", [np.array([1, 2**53], np.int64), np.array([1, 2**64 - 1], np.uint64),
                                    np.array([1.0, 2.0**60]), np.array([1, -(2**63)], np.int64)],
                         ids=["int64", "uint64-that-wraps", "float", "int64-min"])
def test_batched_class_id_beyond_2_53_is_an_error_not_wrapped(device, column):
    spec = {"xyxy": [[0, 0, 1, 1], [0, 0, 2, 2]], "image_index": [0, 1], "class_id": column}
    with pytest.raises(BoxError, match=r"^image 1, box key 'k', box 1: class id -?\d+ is outside") as info:
        draw(blank(5, 5, n=2), {"k": spec}, device)
    assert (info.value.index, info.value.key) == (1, "k")


@pytest.mark.parametrize("label", [2**53, -(2**53), 10**30])
def test_class_labels_key_beyond_2_53_is_an_error(device, label):
    img = blank(5, 5, n=3)
    boxes = [None, None, {"k": key(mm(0, 1, 0, 1), class_labels={label: "x"})}]
    with pytest.raises(BoxError, match=rf"image 2, box key 'k': class_labels key {label} is outside"):
        draw(img, boxes, device)


@pytest.mark.parametrize("labels", [{1: {"name": "car"}}, {1: ["car"]}, {1: {"en": "car", "de": "Auto"}}],
                         ids=["dict", "list", "translations"])
def test_nested_class_label_value_is_an_error(device, labels):
    img = blank(5, 5)
    with pytest.raises(BoxError, match=r"image 0, box key 'k': class_labels must be a dictionary of numbers to "
                       r"strings, got 1: "):
        draw(img, [{"k": key(mm(0, 1, 0, 1, class_id=1), class_labels=labels)}], device)
    spec = {"xyxy": [[0, 0, 1, 1]], "class_id": [1], "class_labels": labels}
    with pytest.raises(BoxError, match=r"box key 'k': class_labels must be a dictionary of numbers to strings"):
        draw(img, {"k": spec}, device)


def test_empty_box_key_is_an_error(device):
    with pytest.raises(BoxError, match=r"image 0, box key '': box keys must be non-empty strings"):
        draw(blank(5, 5), [{"": key(mm(0, 1, 0, 1))}], device)
    with pytest.raises(BoxError, match=r"box key '': box keys must be non-empty strings"):
        draw(blank(5, 5), {"": {"xyxy": [[0, 0, 1, 1]], "class_id": [0]}}, device)
