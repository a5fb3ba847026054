"""The app's screens, in navigation order. Each entry: (key, "module:Class").

Every screen class takes ``(state: AppState, parent=None)``, has class attributes ``title`` and
``icon_name`` (an SVG in resources/icons/), and implements ``busy() -> bool`` and ``shutdown()``
(cancel its workers and wait for them) so the main window can close cleanly.
"""

SCREENS: list[tuple[str, str]] = [
    ("data", "clipstudio.gui.screens.data_screen:DataScreen"),
    ("model", "clipstudio.gui.screens.model_screen:ModelScreen"),
    ("prompts", "clipstudio.gui.screens.prompt_screen:PromptScreen"),
    ("train", "clipstudio.gui.screens.train_screen:TrainScreen"),
    ("results", "clipstudio.gui.screens.results_screen:ResultsScreen"),
    ("retrieval", "clipstudio.gui.screens.retrieval_screen:RetrievalScreen"),
    ("explore", "clipstudio.gui.screens.explore_screen:ExploreScreen"),
]
