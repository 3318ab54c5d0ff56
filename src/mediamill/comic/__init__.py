"""Comic archives: reading and writing them, ComicInfo.xml, names, renames, safe rewrites."""
