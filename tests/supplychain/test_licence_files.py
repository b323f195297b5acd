"""Licence files as evidence: which BSD a bare "BSD" means, and the licence of a package whose metadata says
nothing. Checked on packages installed here whose licence was read by hand."""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import pytest

from modelshield.supplychain.distributions import installed_distributions
from modelshield.supplychain.licenses import detect_licence

BSD_HEAD = (
    "Copyright (c) 2020, Someone\nAll rights reserved.\n\n"
    "Redistribution and use in source and binary forms, with or without\nmodification, are permitted provided that "
    "the following conditions are met:\n\n1. Redistributions of source code must retain the above copyright notice.\n"
    "2. Redistributions in binary form must reproduce the above copyright notice.\n"
)
BSD3_CLAUSE = (
    "3. Neither the name of the copyright holder nor the names of its\n   contributors may be used to endorse or "
    "promote products derived from\n   this software without specific prior written permission.\n"
)
DISCLAIMER = '\nTHIS SOFTWARE IS PROVIDED BY THE COPYRIGHT HOLDERS AND CONTRIBUTORS "AS IS"\n'
BSD2 = BSD_HEAD + DISCLAIMER
BSD3 = BSD_HEAD + BSD3_CLAUSE + DISCLAIMER
MIT = (
    "MIT License\n\nCopyright (c) 2025 Someone\n\nPermission is hereby granted, free of charge, to any person "
    'obtaining a copy\nof this software and associated documentation files (the "Software"), to deal\n'
)
APACHE = "   Apache License\n   Version 2.0, January 2004\n   http://www.apache.org/licenses/\n"


def _dist(tmp_path: Path, headers: list[str], files: dict[str, str]) -> metadata.Distribution:
    info = tmp_path / "pkg-1.0.dist-info"
    (info / "licenses").mkdir(parents=True)
    declared = [f"License-File: {name}" for name in files]
    text = "Metadata-Version: 2.4\nName: pkg\nVersion: 1.0\n" + "".join(h + "\n" for h in headers + declared)
    (info / "METADATA").write_text(text, encoding="utf-8")
    for name, body in files.items():
        (info / "licenses" / name).write_text(body, encoding="utf-8")
    return metadata.PathDistribution(info)


@pytest.mark.parametrize(
    ("headers", "files", "expected"),
    [
        (["License: BSD"], {"LICENSE": BSD2}, "BSD-2-Clause"),
        (["License: BSD"], {"LICENSE": BSD3}, "BSD-3-Clause"),
        (["License: BSD"], {}, "BSD-3-Clause"),  # no text to tell: the common reading
        (["Classifier: License :: OSI Approved :: BSD License"], {"COPYING": BSD2}, "BSD-2-Clause"),
        (["License: 2-clause BSD"], {}, "BSD-2-Clause"),
        (
            [
                "Classifier: License :: OSI Approved :: Apache Software License",
                "Classifier: License :: OSI Approved :: BSD License",
            ],
            {"LICENSE": "either of the licenses in LICENSE.APACHE or LICENSE.BSD", "LICENSE.BSD": BSD2},
            "Apache-2.0 OR BSD-2-Clause",
        ),
        (["License: BSD-3-Clause"], {"LICENSE": BSD2}, "BSD-3-Clause"),  # an explicit id is not second-guessed
        (  # uvloop: License names one of the two licences its classifiers offer
            [
                "License: MIT License",
                "Classifier: License :: OSI Approved :: Apache Software License",
                "Classifier: License :: OSI Approved :: MIT License",
            ],
            {},
            "Apache-2.0 OR MIT",
        ),
    ],
)
def test_which_bsd(tmp_path: Path, headers: list[str], files: dict[str, str], expected: str) -> None:
    assert detect_licence(_dist(tmp_path, headers, files))[0] == expected


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"LICENSE": MIT}, ("MIT", "license file LICENSE")),
        ({"LICENSE": APACHE}, ("Apache-2.0", "license file LICENSE")),
        ({"LICENSE": BSD3}, ("BSD-3-Clause", "license file LICENSE")),
        ({"LICENSE": MIT, "NOTICE": APACHE}, ("", "none")),  # two licences, no metadata to say how: not guessed
        ({"LICENSE": "All rights reserved."}, ("", "none")),
    ],
)
def test_licence_from_the_file_alone(tmp_path: Path, files: dict[str, str], expected: tuple[str, str]) -> None:
    assert detect_licence(_dist(tmp_path, [], files)) == expected


@pytest.mark.parametrize(
    ("package", "licence"),
    [
        ("packaging", "Apache-2.0 OR BSD-2-Clause"),  # LICENSE: either of LICENSE.APACHE or LICENSE.BSD
        ("patsy", "BSD-2-Clause"),  # License: 2-clause BSD
        ("jinja2", "BSD-3-Clause"),  # classifier BSD License; LICENSE.txt has the third clause
        (
            "namex",
            "Apache-2.0",
        ),  # no licence metadata at all; LICENSE: "Licensed under the Apache License, Version 2.0"
        ("skops", "MIT"),  # only "License :: OSI Approved"; LICENSE: MIT
    ],
)
def test_installed_packages_read_by_hand(package: str, licence: str) -> None:
    dist = installed_distributions().get(package)
    if dist is None:
        pytest.skip(f"{package} is not installed")
    assert detect_licence(dist)[0] == licence
