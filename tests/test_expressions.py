"""Rule expressions evaluate vectorised exactly like Python would, row by row, and render their values."""

import numpy as np

from decisioning.expressions import compile_expression, format_value

FIELDS = {"age": None, "segment": None, "vip": None, "cart": None}
COLS = {
    "age": np.array([17, 18, 40, 70]),
    "segment": np.array(["new", "vip", "regular", "vip"], dtype=object),
    "vip": np.array([False, True, False, True]),
    "cart": np.array([0.0, 12.5, 99.99, 250.0]),
}


def rowwise(text):
    out = []
    for i in range(4):
        env = {k: v[i].item() if hasattr(v[i], "item") else v[i] for k, v in COLS.items()}
        out.append(bool(eval(text, {"__builtins__": {}, "abs": abs, "min": min, "max": max}, env)))  # noqa: S307 - reference only
    return out


def test_vectorised_evaluation_matches_python_row_by_row():
    for text in ["age < 18", "18 <= age < 65", "segment in ('vip', 'regular')", "segment not in ['vip']",
                 "not vip and cart > 10", "vip or age >= 70", "abs(cart - 100) < 5", "max(age, 20) == 20",
                 "cart * 0.1 >= 1 if vip else age > 30"]:
        expr = compile_expression(text, FIELDS, "test")
        assert expr.evaluate_bool(COLS, 4).tolist() == rowwise(text), text


def test_fields_read_are_kept():
    expr = compile_expression("not vip and cart > 10 and cart < 500", FIELDS, "test")
    assert expr.fields == ("vip", "cart")


def test_render_writes_values_next_to_fields():
    expr = compile_expression("age < 18 and not vip", FIELDS, "test")
    assert expr.render({"age": 17, "vip": False}) == "age=17 < 18 and not [vip=false]"
    rows = expr.render_columns(COLS, np.array([0, 3]))
    assert rows == ["age=17 < 18 and not [vip=false]", "age=70 < 18 and not [vip=true]"]


def test_format_value():
    assert [format_value(v) for v in (45, 45.0, 0.1, True, "vip")] == ["45", "45", "0.1", "true", "'vip'"]
