from clipstudio.engine.plural import plural


def test_one_is_singular_and_other_counts_plural_with_thousands_separated():
    assert plural(1, "image") == "1 image"
    assert plural(0, "image") == "0 images"
    assert plural(1200, "image") == "1,200 images"
    assert plural(3, "copy", "copies") == "3 copies"
    assert plural(1, "image is", "images are") == "1 image is"
