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
    "restore, initialize exactly the rest",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    packages=find_packages(include=["partialsaver", "partialsaver.*"]),
    package_data={"partialsaver": ["py.typed"]},
    python_requires=">=3.9",
    # The offline tools (list, show, diff, rename, export, import) read and write checkpoints
    # themselves: numpy, crc32c, and ml_dtypes for bfloat16 values. TensorFlow, which SmartSaver
    # needs, comes through an extra so that a user keeps the build (GPU / CPU) they have.
    install_requires=["numpy", "google-crc32c", "ml_dtypes"],
    extras_require={
        # The range CI tests: 2.13 (Keras 2) and 2.21 (Keras 3), see .ci/run.
        "tf": ["tensorflow>=2.13,<2.22"],
        "tf-cpu": ["tensorflow-cpu>=2.13,<2.22"],
        "cli": ["tqdm"],
        # Remote paths (gs://, s3://, memory://, ...) without TensorFlow; add gcsfs / s3fs as needed.
        "fsspec": ["fsspec"],
        # tf-slim builds the real VGG-16 the fine-tune tests restore; nbclient and ipykernel
        # execute the walkthrough notebook.
        # bert-tensorflow is Google BERT's own code: its AdamWeightDecayOptimizer writes the
        # optimizer state the OPTIMIZER_SLOTS tests check.
        "test": ["pytest>=7", "tqdm", "tf-slim", "nbclient", "nbformat", "ipykernel", "bert-tensorflow==1.0.4",
                 "safetensors", "fsspec"],
        # The tests that run without TensorFlow (make test-notf).
        "test-offline": ["pytest>=7", "safetensors", "fsspec"],
        "bench": ["tensorpack==0.11", "psutil"],
        # make lint and make docs (pinned: a new release must not turn CI red on its own).
        "lint": ["ruff==0.17.6", "mypy==2.4.1"],
        "docs": ["mkdocs==1.6.1", "mkdocs-material==9.8.2", "mkdocstrings[python]==1.0.8",
                 "mkdocstrings-python==2.0.11"],
    },
    entry_points={"console_scripts": ["partialsaver = partialsaver.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
        "License :: OSI Approved :: Apache Software License",
    ],
)
