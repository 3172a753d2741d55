"""Config schemas: field types and ranges, cross-key rules, resume policies, complete key coverage."""
import ml_collections
import pytest

from lrjax.harness.schema import Choice, ConfigError, Either, Float, Int, Names, Rule, Schema, Seq, Spec

SCHEMA = Schema(
    d=Int(min=2), eta=Float(gt=0), tol=Float(gt=0, optional=True, resume="any"), steps=Int(min=1, resume="grow"),
    dtype=Choice("float32", "float64"), eps=Either(Float(gt=0), Seq(Float(gt=0), length=lambda c: c.depth)),
    depth=Int(min=1), methods=Names("a", "b"), param=Spec(shape=lambda c: (c.d, c.d)),
    checks=[Rule(("depth", "d"), lambda depth, d: depth <= d, "depth must be <= d")],
)


def config(**overrides):
    c = ml_collections.ConfigDict({"experiment": "x", "d": 8, "eta": 0.1, "tol": None, "steps": 10,
                                   "dtype": "float32", "eps": 1.0, "depth": 3, "methods": "a,b",
                                   "param": "lowrank(2)"})
    for k, v in overrides.items():
        del c[k]
        c[k] = v
    return c


def test_valid_config_passes_and_is_normalised():
    SCHEMA.validate(config())
    c = config(eps=[1, 0.5, 2.0], tol=1e-3, eta=1)
    SCHEMA.validate(c)
    assert c.eta == 1.0 and isinstance(c.eta, float) and c.eps == (1.0, 0.5, 2.0)
    assert SCHEMA.fixed(c) == {k: c[k] for k in ("d", "eta", "dtype", "eps", "depth", "methods", "param")}


@pytest.mark.parametrize("key, value, message", [
    ("d", True, "config key 'd' must be an integer >= 2, got True"),
    ("d", 2.0, "must be an integer >= 2, got 2.0"),
    ("eta", 0, "config key 'eta' must be a finite number > 0, got 0"),
    ("eta", float("inf"), "got inf"),
    ("eta", float("nan"), "got nan"),
    ("eta", False, "got False"),
    ("tol", -1e-3, "config key 'tol' must be a finite number > 0, got -0.001"),
    ("dtype", "float16", "must be one of 'float32', 'float64', got 'float16'"),
    ("eps", (1.0, 2.0), "config key 'eps' must have 3 entries, got 2"),
    ("eps", (1.0, -2.0, 1.0), "config key 'eps' entry 1: must be a finite number > 0, got -2.0"),
    ("eps", (), "must have 3 entries, got 0"),
    ("eps", "big", "must be a finite number > 0 or a tuple whose entries are each a finite number > 0"),
    ("methods", "a,c", "must be a comma-separated list of distinct names from a, b, got 'a,c'"),
    ("methods", "", "got ''"),
    ("methods", "a,a", "distinct names"),
    ("param", "lowrank(9)", "config key 'param' = 'lowrank(9)': lowrank: rank=9 exceeds min(shape)=8"),
    ("param", "nope(1)", "unknown parameterization 'nope'"),
    ("depth", 9, "config keys depth=9, d=8: depth must be <= d"),
])
def test_bad_values_name_key_and_value(key, value, message):
    with pytest.raises(ConfigError, match=None) as info:
        SCHEMA.validate(config(**{key: value}))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_every_key_is_declared_and_present():
    c = config()
    c.extra = 1
    with pytest.raises(ConfigError, match="config key 'extra' is not one this experiment reads"):
        SCHEMA.validate(c)
    c = config()
    del c["eta"]
    with pytest.raises(ConfigError, match="config is missing key 'eta'"):
        SCHEMA.validate(c)


def test_resume_policies():
    old = config().to_dict()
    assert SCHEMA.resume_changes(old, config(steps=20, tol=1e-4).to_dict()) == ([], ["steps: 10 -> 20",
                                                                                    "tol: None -> 0.0001"])
    refused, allowed = SCHEMA.resume_changes(old, config(steps=5, eta=0.2).to_dict())
    assert refused == ["eta: 0.1 -> 0.2", "steps: 10 -> 5"] and allowed == []


def test_schema_rejects_a_bad_declaration():
    with pytest.raises(ValueError, match="resume must be one of"):
        Schema(d=Int(resume="sometimes"))
    with pytest.raises(TypeError, match="must be a Field"):
        Schema(d=int)
