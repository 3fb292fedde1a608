"""A trained run's answers for new inputs, one JSON line each (also ``clue-predict``; see clue/predict_cli.py):

    python scripts/predict.py tnews --run runs/rbt --input titles.txt --output labels.jsonl --top-k 3
"""

from clue.predict_cli import main

if __name__ == "__main__":
    main()
