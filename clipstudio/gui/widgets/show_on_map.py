"""The image grids' "Show on the map" action: right-click an image (or press Ctrl+M on the current one)
to see it on the Explore screen's map.

The grid only says which image was asked for (``ShowOnMap.requested``); its screen passes that on
to ``AppState.request_show_on_map``, and the Explore screen takes it from there.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtCore import QItemSelectionModel, QModelIndex, QObject, QPoint, Qt, Signal
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QAbstractItemView, QMenu

SHOW_ON_MAP = "Show on the map"
SHOW_ON_MAP_KEYS = "Ctrl+M"


class ShowOnMap(QObject):
    """Adds "Show on the map" to ``view``'s context menu and keyboard; ``path_of(index)`` names the image."""

    requested = Signal(str)  # the image's path

    def __init__(self, view: QAbstractItemView, path_of: Callable[[QModelIndex], str | None]) -> None:
        super().__init__(view)
        self.view = view
        self._path_of = path_of
        self.action = QAction(SHOW_ON_MAP, view)
        self.action.setShortcut(QKeySequence(SHOW_ON_MAP_KEYS))
        self.action.setShortcutContext(Qt.ShortcutContext.WidgetShortcut)
        self.action.setToolTip("Show this image on the Explore screen's map of the whole dataset.")
        self.action.triggered.connect(self._on_action_triggered)
        view.addAction(self.action)
        view.setContextMenuPolicy(Qt.ContextMenuPolicy.CustomContextMenu)
        view.customContextMenuRequested.connect(self._on_view_context_menu_requested)

    def menu_at(self, pos: QPoint) -> QMenu | None:
        """The context menu for the image at ``pos`` (viewport coordinates), made current; None off the images."""
        index = self.view.indexAt(pos)
        if not index.isValid():
            return None
        selection = self.view.selectionModel()
        if selection.isSelected(index):  # keep a multiple selection, as file browsers do
            selection.setCurrentIndex(index, QItemSelectionModel.SelectionFlag.NoUpdate)
        else:
            self.view.setCurrentIndex(index)
        menu = QMenu(self.view)
        menu.addAction(self.action)
        return menu

    def _on_view_context_menu_requested(self, pos: QPoint) -> None:
        menu = self.menu_at(pos)
        if menu is not None:
            menu.exec(self.view.viewport().mapToGlobal(pos))
            menu.deleteLater()

    def _on_action_triggered(self) -> None:
        index = self.view.currentIndex()
        path = self._path_of(index) if index.isValid() else None
        if path:
            self.requested.emit(path)
