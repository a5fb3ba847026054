"""The PySide6 desktop app: a thin layer over ``clipstudio.engine``. The engine never imports this."""
