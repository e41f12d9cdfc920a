"""The app layer: commands and their descriptions, config composition, pipeline steps, batch
search, the results page and the web service. Nothing below imports it."""
