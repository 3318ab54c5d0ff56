"""VOD export as .strm + .nfo files in the Kodi/Jellyfin layout: names, layout, writing."""
