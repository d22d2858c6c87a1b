"""The Slack adapter: the bolt app and its HTTP route, listeners, slash command and notifier.

``blocks`` holds the pure Block Kit rendering and parsing; everything else here talks to
Slack (through bolt and slack-sdk) or to the engine on Slack's behalf.
"""
