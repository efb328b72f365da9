"""A task of your own for the DropAttack sweep service: an MLP on scikit-learn's breast-cancer
data (bundled with scikit-learn, no download)."""
