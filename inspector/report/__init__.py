"""The PoC / KPI report (issue 17): agreement, cost-weighted error and its spread, as one HTML file."""
