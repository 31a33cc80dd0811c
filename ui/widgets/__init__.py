"""Small Qt pieces shared by several views: palette, banners, tables, frame panel, workers."""
