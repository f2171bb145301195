"""Shared by every test folder: this folder is on sys.path (pytest puts a conftest's folder
there), so the helpers here (finetune_data, hub_server, script_modules) import by name."""
