"""strictjson.too_deep (the fast form: strings cut out by a regular expression, brackets walked)
against a plain character-by-character reference on random texts made of the characters that
matter (brackets, quotes, backslashes), and on the depth edge cases."""
import random

from host_tools.verify import strictjson


def reference(text, max_depth):
    depth, in_string, escaped = 0, False, False
    for c in text:
        if in_string:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == '"':
                in_string = False
        elif c == '"':
            in_string = True
        elif c in "[{":
            depth += 1
            if depth > max_depth:
                return True
        elif c in "]}":
            depth -= 1
    return False


def test_fast_depth_scan_agrees_with_the_reference():
    rng = random.Random(20261128)
    texts = ['{"a":[1,[2,[3]]]}', "[" * 9 + "]" * 9, '{"a":"[[[[[[[[[["}', '{"a":"\\"[[[[[[[[[[["}',
             '"[[[[[[[[[[', '[[[["\\\\"[[[[[[', ""]
    texts += ["".join(rng.choice('[]{}"\\ab,:1') for _ in range(rng.randrange(1, 60))) for _ in range(3000)]
    for text in texts:
        for depth in (0, 1, 2, 3, 8):
            assert strictjson.too_deep(text, depth) == reference(text, depth), (text, depth)


def _nested(rng, depth):
    if depth == 0 or rng.random() < 0.2:
        return rng.choice(['1', '"[{"', '"\\"[["', '2.5', 'true'])
    items = [_nested(rng, depth - 1) for _ in range(rng.randrange(0, 3))]
    if rng.random() < 0.5:
        return "[" + ",".join(items) + "]"
    return "{" + ",".join('"k%d":%s' % (i, v) for i, v in enumerate(items)) + "}"


def test_loads_refuses_exactly_what_nests_too_deep():
    """loads measures depth on the parsed value: on valid JSON it refuses exactly the texts
    the text scan calls too deep, and a text past the scanner's recursion limit too."""
    rng = random.Random(11)
    for _ in range(2000):
        text = _nested(rng, rng.randrange(0, 12))
        for depth in (0, 1, 3, 8):
            try:
                strictjson.loads(text, max_depth=depth)
                refused = False
            except strictjson.JsonError as exc:
                assert "nested deeper" in str(exc), (text, exc)
                refused = True
            assert refused == reference(text, depth), (text, depth)
    for text in ("[" * 5000 + "]" * 5000, "[" * 5000):
        try:
            strictjson.loads(text)
            raise AssertionError("accepted")
        except strictjson.JsonError as exc:
            assert "nested deeper" in str(exc)
