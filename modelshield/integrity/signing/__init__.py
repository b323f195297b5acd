"""Model signing compatible with OpenSSF model-signing (``model.sig``: Sigstore bundle → DSSE → in-toto).

sign_model("my-model/", "key.pem")              # writes my-model/model.sig
verify_model("my-model/", "key.pub.pem")        # IntegrityError on any tamper
"""

from modelshield.integrity.signing.keys import KEY_TYPES, generate_key_pair, load_private_key, load_public_key
from modelshield.integrity.signing.sign import SIGNATURE_NAME, default_signature_path, sign_model
from modelshield.integrity.signing.verify import VerifiedModel, verify_model

__all__ = [
    "KEY_TYPES",
    "SIGNATURE_NAME",
    "VerifiedModel",
    "default_signature_path",
    "generate_key_pair",
    "load_private_key",
    "load_public_key",
    "sign_model",
    "verify_model",
]
