"""Activity adapters: an activity payload in, one call of the core, its small JSON result out.
No Azure import here: activity_triggers/ binds these to Durable activity functions."""
