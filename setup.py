"""partialsaver: partial checkpoint restore for TensorFlow 1-style graphs."""

import re
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
VERSION = re.search(r'^__version__ = "([^"]+)"', (HERE / "partialsaver" / "__init__.py").read_text(), re.M).group(1)

setup(
    name="partialsaver",
    version=VERSION,
    description="Partial TensorFlow checkpoint restore with a report first: select, rename, "
    "restore, initialise exactly the rest",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["partialsaver", "partialsaver.*"]),
    package_data={"partialsaver": ["py.typed"]},
    python_requires=">=3.9",
    # TensorFlow comes through an extra so that a user keeps the build (GPU / CPU) they have.
    install_requires=["numpy"],
    extras_require={
        # The range CI tests: 2.13 (Keras 2) and 2.21 (Keras 3), see .ci/run.
        "tf": ["tensorflow>=2.13,<2.22"],
        "tf-cpu": ["tensorflow-cpu>=2.13,<2.22"],
        "cli": ["tqdm"],
        # tf-slim builds the real VGG-16 the fine-tune tests restore; nbclient and ipykernel
        # execute the walkthrough notebook.
        # bert-tensorflow is Google BERT's own code: its AdamWeightDecayOptimizer writes the
        # optimizer state the OPTIMIZER_SLOTS tests check.
        "test": ["pytest>=7", "tqdm", "tf-slim", "nbclient", "nbformat", "ipykernel", "bert-tensorflow==1.0.4"],
        "bench": ["tensorpack==0.11", "psutil"],
    },
    entry_points={"console_scripts": ["partialsaver = partialsaver.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "License :: OSI Approved :: Apache Software License",
    ],
)
