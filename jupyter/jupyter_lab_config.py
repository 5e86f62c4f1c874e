# The project's own JupyterLab configuration: `make lab` and tests/test_browser.py both start
# JupyterLab with `--config=jupyter/jupyter_lab_config.py`, so what the test checks is what a
# learner gets. Nothing here reaches the internet, and JupyterLab never asks whether it may:
#   * news_url None: the server side of the news feed is off;
#   * NeverCheckForUpdate: the server never asks PyPI for a newer JupyterLab;
#   * app_settings_dir: JupyterLab reads lab-settings/overrides.json, which sets the
#     notification plugin's fetchNews to "false" and checkForUpdates to false. Without it the
#     browser shows "Would you like to get notified about official Jupyter news?" on the first
#     start, whatever news_url says (the question depends on fetchNews alone).
# A learner can still change these settings in Settings > Notifications; overrides only change
# the defaults. A JupyterHub admin gets the same effect by copying lab-settings/overrides.json
# to {sys.prefix}/share/jupyter/lab/settings/overrides.json.
from pathlib import Path

c = get_config()  # noqa: F821 (traitlets defines get_config in config files)
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.NeverCheckForUpdate"
c.LabApp.app_settings_dir = str(Path(__file__).resolve().parent / "lab-settings")
