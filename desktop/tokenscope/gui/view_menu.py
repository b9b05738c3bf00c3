"""The View menu: zoom for a projector and a light or dark theme, both remembered.

Zoom scales the application's font, and with it every chart (tick labels, axis names, titles,
legends, value labels): 80% to 200% in steps. The theme is System (follow the system's colour
scheme and palette, live), Light or Dark; charts follow the window's palette.
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, QObject, QSettings, Qt
from PySide6.QtGui import QAction, QActionGroup, QGuiApplication, QKeySequence, QPalette
from PySide6.QtWidgets import QApplication, QMainWindow, QMenu, QStyleFactory

from tokenscope.gui.widgets.theme import dark_palette, is_dark, restyle_all

ZOOM_STEPS = (80, 90, 100, 110, 125, 150, 175, 200)
THEMES = ("system", "light", "dark")
ZOOM_KEY = "view/zoom"
THEME_KEY = "view/theme"
# Kept on the application (not in Python globals): the first window's view of the system.
BASE_SIZE_PROPERTY = "tokenscopeBaseFontSize"
BASE_STYLE_PROPERTY = "tokenscopeBaseStyle"


def _app() -> QApplication:
    app = QApplication.instance()
    assert isinstance(app, QApplication), "the View menu needs a QApplication"
    return app


class Appearance(QObject):
    """Applies zoom and theme to the application and keeps them in the settings; in System
    mode it follows the system's colour scheme and palette as they change."""

    def __init__(self, settings: QSettings, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.settings = settings
        app = _app()
        if app.property(BASE_SIZE_PROPERTY) is None:
            app.setProperty(BASE_SIZE_PROPERTY, app.font().pointSizeF())
            app.setProperty(BASE_STYLE_PROPERTY, app.style().name())
        self._applying = False
        self.zoom = _zoom_setting(settings.value(ZOOM_KEY, 100))
        theme = str(settings.value(THEME_KEY, "system"))
        self.theme = theme if theme in THEMES else "system"
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._on_system_scheme_changed)

    # ----- zoom ----------------------------------------------------------------------------

    def set_zoom(self, percent: int) -> None:
        self.zoom = _zoom_setting(percent)
        self.settings.setValue(ZOOM_KEY, self.zoom)
        self._apply_zoom()
        restyle_all(fit_columns=True)

    def zoom_in(self) -> None:
        self.set_zoom(next((z for z in ZOOM_STEPS if z > self.zoom), ZOOM_STEPS[-1]))

    def zoom_out(self) -> None:
        self.set_zoom(next((z for z in reversed(ZOOM_STEPS) if z < self.zoom), ZOOM_STEPS[0]))

    def _apply_zoom(self) -> None:
        app = _app()
        font = app.font()
        font.setPointSizeF(float(app.property(BASE_SIZE_PROPERTY)) * self.zoom / 100)
        app.setFont(font)

    # ----- theme ---------------------------------------------------------------------------

    def set_theme(self, theme: str) -> None:
        if theme not in THEMES:
            raise ValueError(f"theme is one of {', '.join(THEMES)}, not {theme!r}")
        self.theme = theme
        self.settings.setValue(THEME_KEY, theme)
        self._apply_theme()
        restyle_all()

    def _apply_theme(self) -> None:
        app = _app()
        self._applying = True
        try:
            # Back to the system's own palette and style first (a palette with nothing set
            # follows the platform's theme again), then ours where it is wanted.
            app.setPalette(QPalette())
            base_style = str(app.property(BASE_STYLE_PROPERTY))
            if app.style().name().lower() != base_style.lower():
                app.setStyle(base_style)
            system_dark = self._system_dark()
            if self.theme == "dark" or (self.theme == "system" and system_dark):
                if not is_dark():  # the system says dark but its palette is light: ours
                    self._use_fusion(app)
                    app.setPalette(dark_palette())
            elif self.theme == "light" and is_dark():
                self._use_fusion(app)
                app.setPalette(app.style().standardPalette())
        finally:
            self._applying = False

    @staticmethod
    def _use_fusion(app: QApplication) -> None:
        # Fusion draws with the palette everywhere; native styles may keep their own colours.
        if app.style().name().lower() != "fusion":
            style = QStyleFactory.create("Fusion")
            if style is not None:
                app.setStyle(style)

    @staticmethod
    def _system_dark() -> bool:
        scheme = QGuiApplication.styleHints().colorScheme()
        if scheme == Qt.ColorScheme.Dark:
            return True
        if scheme == Qt.ColorScheme.Light:
            return False
        return is_dark()  # no scheme given: the palette says it

    def _on_system_scheme_changed(self, *_: object) -> None:
        if self.theme == "system":
            self._apply_theme()
            restyle_all()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Installed on the window (not the application, which would put every event of
        every widget through Python): a palette set from outside (the platform's theme
        changing, a style) reaches the window, and the charts and notes follow it."""
        if (
            event.type() == QEvent.Type.PaletteChange
            and not self._applying
            and self.theme == "system"
        ):
            restyle_all()
        return False

    def apply(self) -> None:
        """Zoom and theme as remembered (at start)."""
        self._apply_zoom()
        self._apply_theme()
        restyle_all(fit_columns=self.zoom != 100)


def _zoom_setting(value: object) -> int:
    try:
        percent = int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 100
    return min(ZOOM_STEPS, key=lambda z: abs(z - percent))


class ViewMenu(QObject):
    """The View menu of a window: Zoom in / Zoom out / Actual size and the theme."""

    def __init__(self, window: QMainWindow, settings: QSettings) -> None:
        super().__init__(window)
        self.appearance = Appearance(settings, self)
        window.installEventFilter(self.appearance)
        self.menu: QMenu = window.menuBar().addMenu("&View")
        self.zoom_in = self._action(
            "Zoom &in", ["Ctrl+=", "Ctrl++"], self.appearance.zoom_in, "Larger text and charts"
        )
        self.zoom_out = self._action(
            "Zoom &out", ["Ctrl+-"], self.appearance.zoom_out, "Smaller text and charts"
        )
        self.actual_size = self._action(
            "&Actual size", ["Ctrl+0"], lambda: self.appearance.set_zoom(100), "Zoom 100%"
        )
        self.zoom_label = QAction(self)
        self.zoom_label.setEnabled(False)
        self.menu.addAction(self.zoom_label)
        self.menu.addSeparator()
        theme_menu = self.menu.addMenu("&Theme")
        group = QActionGroup(self)
        self.theme_actions: dict[str, QAction] = {}
        for theme, text in (
            ("system", "&System (follow the system's light or dark)"),
            ("light", "&Light"),
            ("dark", "&Dark"),
        ):
            action = QAction(text, self, checkable=True)
            action.setData(theme)
            action.triggered.connect(lambda _=False, t=theme: self.set_theme(t))
            group.addAction(action)
            theme_menu.addAction(action)
            self.theme_actions[theme] = action
        self.menu.aboutToShow.connect(self._show_state)
        self.appearance.apply()
        self._show_state()

    def _action(self, text: str, keys: list[str], slot, tip: str) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setStatusTip(tip)
        action.triggered.connect(slot)
        action.triggered.connect(self._show_state)
        self.menu.addAction(action)
        return action

    def set_theme(self, theme: str) -> None:
        self.appearance.set_theme(theme)
        self._show_state()

    def _show_state(self) -> None:
        self.zoom_label.setText(f"Zoom: {self.appearance.zoom}%")
        self.theme_actions[self.appearance.theme].setChecked(True)
        self.zoom_in.setEnabled(self.appearance.zoom < ZOOM_STEPS[-1])
        self.zoom_out.setEnabled(self.appearance.zoom > ZOOM_STEPS[0])
