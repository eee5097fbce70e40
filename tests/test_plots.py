import numpy as np

from core.plot_2d import plot_confusion, plot_curves, plot_image_grid, plot_tsne

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _is_png(path):
    return path.is_file() and path.stat().st_size > 2000 and path.read_bytes()[:8] == PNG_MAGIC


def test_tsne_plot(tmp_path, digits):
    path = plot_tsne(digits.x[:300].reshape(300, -1), digits.y[:300], tmp_path / "tsne.png")
    assert _is_png(path)


def test_confusion_plot(tmp_path, digits):
    pred = (digits.y + 1) % 10
    assert _is_png(plot_confusion(digits.y, pred, tmp_path / "confusion.png"))


def test_image_grid_with_images_and_flat_vectors(tmp_path, digits):
    path = plot_image_grid([digits.x[:8], digits.x[8:16].reshape(8, -1)], tmp_path / "grid.png",
                           row_titles=["images", "flat"])
    assert _is_png(path)


def test_training_curves(tmp_path):
    path = plot_curves({"loss": np.linspace(1, 0.1, 20),
                        "acc": np.array([[1, 0.5], [5, 0.7], [10, 0.8]])},
                       tmp_path / "curves.png")
    assert _is_png(path)
