"""One image, large, with what the app knows about it: the viewer every image grid opens on double-click.

The Data screen's thumbnails, the Results screen's predictions and the Retrieval screen's hits all
describe their image as an ``ImageInfo`` and call ``ImageViewer.show_image``. The image is decoded
by the thumbnails' decoder (``gui.thumbnails.decode_thumbnail``: DICOM, EXIF orientation, 16-bit
greys), only larger; small images (28 px MedMNIST) are enlarged with its bicubic smoothing, as
image viewers in radiology do (pixel blocks made a 28-px chest X-ray unrecognisable at 17x).
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication, QImage, QPixmap
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QVBoxLayout, QWidget

from clipstudio.engine.errors import ImageError
from clipstudio.gui.thumbnails import decode_thumbnail, to_qimage

VIEW_SIZE = 560  # px: the longer side of the shown image, at most (less on a small screen)


@dataclass(frozen=True)
class ImageInfo:
    """What a grid knows about one image; empty fields are left out of the viewer."""

    path: str
    label: str = ""  # the true class
    split: str = ""
    caption: str = ""
    prediction: str = ""
    correct: bool | None = None
    topk: list[tuple[str, float]] = field(default_factory=list)  # (class, probability), best first
    details: list[str] = field(default_factory=list)  # further lines, e.g. a search score
    error: str = ""  # why the file can't be shown, when known


def describe(info: ImageInfo) -> str:
    """The viewer's text about ``info`` (rich text)."""
    rows = []
    if info.label:
        rows.append(("Label", html.escape(info.label)))
    if info.prediction:
        verdict = "" if info.correct is None else (" (correct)" if info.correct else " (wrong)")
        rows.append(("Prediction", f"<b>{html.escape(info.prediction)}</b>{verdict}"))
    if info.topk:
        ranked = "<br>".join(f"{html.escape(name)}: {prob:.1%}" for name, prob in info.topk[:5])
        rows.append((f"Top {min(len(info.topk), 5)}", ranked))
    if info.split:
        rows.append(("Split", html.escape(info.split)))
    if info.caption:
        rows.append(("Caption", html.escape(info.caption)))
    for line in info.details:
        name, sep, value = line.partition(": ")
        rows.append((html.escape(name), html.escape(value)) if sep else ("", html.escape(line)))
    table = "".join(
        f'<tr><td style="color:#5f6670; padding-right:12px; vertical-align:top">{name}</td><td>{value}</td></tr>'
        for name, value in rows
    )
    return f"<p><b>{html.escape(Path(info.path).name)}</b></p><table>{table}</table>"


def decode_large(path: str, size: int) -> QImage:
    """The image at ``path`` with its longer side ``size`` px (``ImageError`` when it can't be read).

    The thumbnails' own decoder at a larger size: smaller images are enlarged with bicubic smoothing.
    """
    return to_qimage(decode_thumbnail(path, size))


TEXT_ROOM_PX = 420


class ImageViewer(QDialog):
    """A window showing one image large with its file name, label, prediction and top-5."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Image")
        self.info: ImageInfo | None = None
        self.image = QLabel()
        self.image.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.image.setMinimumSize(240, 240)
        self.image.setStyleSheet("background: #20242a; color: #e8e8e8;")
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.path_label = QLabel()
        self.path_label.setObjectName("hint")
        self.path_label.setWordWrap(True)
        self.path_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.image, 1)
        layout.addWidget(self.text)
        layout.addWidget(self.path_label)
        layout.addWidget(buttons)

    def show_image(self, info: ImageInfo) -> None:
        """Show ``info``'s image and facts, and bring the window to the front."""
        self.info = info
        self.setWindowTitle(Path(info.path).name)
        self.text.setText(describe(info))
        self.path_label.setText(info.path)
        self.image.setPixmap(QPixmap())
        self.image.setMinimumSize(240, 240)
        try:
            pixmap = QPixmap.fromImage(decode_large(info.path, self._view_size()))
            self.image.setPixmap(pixmap)
            self.image.setMinimumSize(pixmap.size())  # the window makes room for the whole image
        except ImageError as exc:
            reason = str(exc).removeprefix(f"{info.path}: ")
            self.image.setText(f"This file can't be shown:\n{info.error or reason}")
        # Not adjustSize(): Qt caps a window's adjusted size at 2/3 of the screen, which cut the image off.
        hint = self.sizeHint()
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is not None:
            hint = hint.boundedTo(screen.availableGeometry().size())
        self.resize(hint)
        self.show()
        self.raise_()
        self.activateWindow()

    def _view_size(self) -> int:
        screen = self.screen() or QGuiApplication.primaryScreen()
        if screen is None:
            return VIEW_SIZE
        available = screen.availableGeometry()
        # Room for the facts below the image (up to ~10 lines), the path, the buttons and the title
        # bar: a taller image made the window outgrow the screen, which then cut the image off.
        return max(200, min(VIEW_SIZE, available.height() - TEXT_ROOM_PX, available.width() - 80))
