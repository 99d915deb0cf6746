"""The results files: summary.json and its table, junit.xml, the HTML report, all written atomically."""
