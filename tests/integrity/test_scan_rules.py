"""The judging rules one by one, on small inputs built here (dumped or hand-written, never loaded): what the
allow-list trusts, how joblib and legacy torch raw bytes are accounted for, what TorchScript and Keras may name."""

from __future__ import annotations

import base64
import io
import marshal
import pickle
import pickletools
from pathlib import Path

import joblib
import numpy as np
import pytest
import torch

from modelshield.integrity import scan_file
from modelshield.integrity.allowlist import PLAIN, TORCHSCRIPT, Verdict, classify
from modelshield.integrity.keras_hdf5 import check_keras_config
from modelshield.integrity.pickle_analysis import analyse_pickle
from modelshield.integrity.results import verdict_of
from modelshield.integrity.torchscript import check_code
from modelshield.integrity.tree_models import identify


@pytest.mark.parametrize(
    ("name", "verdict"),
    [("sklearn.ensemble._forest.RandomForestClassifier", Verdict.safe), ("sklearn.tree._tree.Tree", Verdict.safe),
     ("sklearn._loss._loss.__pyx_unpickle_CyHalfBinomialLoss", Verdict.safe),
     ("sklearn.datasets.fetch_openml", Verdict.unknown), ("sklearn.utils._testing.TempMemmap", Verdict.unknown),
     ("torch.nn.modules.conv.Conv2d", Verdict.safe), ("torch.nn.modules.module.register_module_forward_hook", Verdict.unknown),
     ("__main__.Net", Verdict.unknown), ("mypkg.layers.Block", Verdict.unknown), ("pip.main", Verdict.unsafe),
     ("torch.jit._pickle.build_intlist", Verdict.safe), ("torch.jit.load", Verdict.unsafe),
     ("torch.serialization._get_layout", Verdict.safe), ("torch.serialization.load", Verdict.unsafe),
     ("__torch__.Net", Verdict.unknown), ("sklearn.callback._transport.Client", Verdict.unknown),
     ("lightgbm.basic.NamedTemporaryFile", Verdict.unknown), ("pandas.DataFrame", Verdict.safe),
     ("pandas.HDFStore", Verdict.unknown)],
)  # fmt: skip
def test_allow_list(name: str, verdict: Verdict) -> None:
    assert classify(name, PLAIN) is verdict


def test_torchscript_classes_pass_only_in_a_torchscript_archive() -> None:
    assert classify("__torch__.torch.nn.modules.linear.Linear", TORCHSCRIPT) is Verdict.safe
    assert classify("os.system", TORCHSCRIPT) is Verdict.unsafe


def _verdict(data: bytes) -> Verdict:
    return verdict_of(analyse_pickle(data, "test").findings)


def test_numpy_random_constructor_must_be_given_a_named_factory() -> None:
    head = b"\x80\x02cnumpy.random._pickle\n__randomstate_ctor\nX\x07\x00\x00\x00MT19937"
    assert _verdict(head + b"\x85R.") is Verdict.safe  # the default factory
    assert _verdict(head + b"cnumpy.random._pickle\n__bit_generator_ctor\n\x86R.") is Verdict.safe
    assert _verdict(head + b"ccollections\nOrderedDict\n)R\x86R.") is Verdict.unknown  # a built object as factory
    assert _verdict(head + b"cbuiltins\nexec\n\x86R.") is Verdict.unsafe


def test_reconstructor_needs_a_named_class() -> None:
    named = b"\x80\x02ccopy_reg\n_reconstructor\ncsklearn.pipeline\nPipeline\ncbuiltins\nobject\nN\x87R."
    built = b"\x80\x02ccopy_reg\n_reconstructor\nccollections\nOrderedDict\n)Rcbuiltins\nobject\nN\x87R."
    assert _verdict(named) is Verdict.safe
    assert _verdict(built) is Verdict.unknown


def _joblib_bytes(value: object) -> bytes:
    buf = io.BytesIO()
    joblib.dump(value, buf)
    return buf.getvalue()


def test_joblib_arrays_are_skipped_exactly() -> None:
    real = _joblib_bytes({"w": np.arange(1000.0), "o": np.array([1, "x"], dtype=object)})
    assert _verdict(real) is Verdict.safe
    assert _verdict(real[:-1000]) is Verdict.unparsed  # array bytes cut short: never safe
    assert _verdict(real + b"\0\0") is Verdict.unknown  # bytes no loader reads


def _legacy_torch() -> bytes:
    buf = io.BytesIO()
    torch.save({"w": torch.arange(6.0), "n": torch.tensor(3)}, buf, _use_new_zipfile_serialization=False)
    return buf.getvalue()


def test_legacy_torch_storages_must_match_their_declaration() -> None:
    real = _legacy_torch()
    assert _verdict(real) is Verdict.safe
    stream = io.BytesIO(real)
    for _ in range(5):  # magic, protocol, sys_info, object, storage keys: the first storage's count follows
        for _op in pickletools.genops(stream):
            pass
    keys_end = stream.tell()
    assert int.from_bytes(real[keys_end : keys_end + 8], "little") in (1, 6)
    wrong_count = real[:keys_end] + (int.from_bytes(real[keys_end : keys_end + 8], "little") + 1).to_bytes(8, "little")
    assert _verdict(wrong_count + real[keys_end + 8 :]) is Verdict.unparsed
    assert _verdict(real[:-4]) is Verdict.unparsed
    assert _verdict(real + pickle.dumps(1, 2)) is Verdict.unknown


def _code_verdict(source: str) -> Verdict:
    return verdict_of(check_code(source.encode(), "code/__torch__.py"))


TORCHSCRIPT_METHOD = """class M(Module):
  __parameters__ = []
  def forward(self: __torch__.M, x: Tensor, mask: Optional[Tensor]=None) -> Tensor:
    if torch.__isnot__(mask, None):
      mask0 = unchecked_cast(Tensor, mask)
      x0 = torch.mul(x, mask0)
    else:
      x0 = x
    _0 = annotate(List[int], [])
    if torch.__contains__(["a"], "a"):
      ops.prim.RaiseException("bad", "builtins.ValueError")
    else:
      pass
    return torch.add(x0, CONSTANTS.c0)
"""


@pytest.mark.parametrize(
    ("line", "verdict"),
    [("    return x", Verdict.safe), ("    _1 = ops.aten.relu(x)", Verdict.safe),
     ("    _1 = ops.torchvision.nms(x, x, 0.5)", Verdict.unknown), ("    _1 = x.__class__", Verdict.unsafe),
     ("    _1 = torch.from_file(\"/etc/passwd\")", Verdict.unsafe), ("    _1 = os.system(\"id\")", Verdict.unsafe),
     ("    import os", Verdict.unsafe), ("    _1 = getattr(self, \"__dict__\")", Verdict.unsafe),
     ("    _1 = __import__(\"os\")", Verdict.unsafe), ("    def (", Verdict.unparsed)],
)  # fmt: skip
def test_torchscript_code_is_judged_by_what_it_names(line: str, verdict: Verdict) -> None:
    source = TORCHSCRIPT_METHOD.replace("    return torch.add", f"{line}\n    return torch.add")
    assert _code_verdict(source) is verdict


def test_keras_bytecode_is_found_by_decoding_not_by_shape() -> None:
    code = base64.b64encode(marshal.dumps((lambda t: t * 2).__code__)).decode()
    data = base64.b64encode(np.random.default_rng(0).bytes(64)).decode()
    dense = {"class_name": "Dense", "module": "keras.layers", "config": {"activation": "relu", "units": 2}}
    assert check_keras_config({**dense, "config": {"activation": {"value": [data]}}}, "c") == []
    assert verdict_of(check_keras_config({**dense, "config": {"activation": {"value": [code]}}}, "c")) is Verdict.unsafe


def test_boosting_native_formats_are_identified_only_when_exact() -> None:
    import lightgbm
    import xgboost

    rng = np.random.default_rng(0)
    x, y = rng.random((40, 3)), np.arange(40) % 2
    ubj = bytes(xgboost.XGBClassifier(n_estimators=2, max_depth=2).fit(x, y).get_booster().save_raw("ubj"))
    text = lightgbm.LGBMClassifier(n_estimators=2, verbose=-1).fit(x, y).booster_.model_to_string().encode()
    assert identify(ubj) == "xgboost-ubjson" and identify(text) == "lightgbm-text"
    assert identify(ubj[:-1]) is None and identify(ubj + b"\x80") is None  # cut short or followed by anything
    assert identify(text.replace(b"\n", b"\0", 3)) is None


@pytest.mark.parametrize("compress", ["xz", "lzma", "bz2", "gzip", "zlib"])
def test_a_corrupt_joblib_stream_is_unparsed_not_a_crash(tmp_path: Path, compress: str) -> None:
    path = tmp_path / "model.joblib"
    joblib.dump({"w": np.arange(2000.0)}, path, compress=(compress, 3))
    body = bytearray(path.read_bytes())
    body[len(body) // 2] ^= 0xFF
    path.write_bytes(bytes(body))
    assert scan_file(path).verdict in (Verdict.unparsed, Verdict.unknown)
