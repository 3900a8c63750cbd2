"""Infrastructure adapters: settings, journal stores, logging. Imports tools' types only."""
