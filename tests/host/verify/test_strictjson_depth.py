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
