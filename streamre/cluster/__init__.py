"""Many servers, one meeting: instances sharing rooms through the MQTT broker (`serve --cluster`)."""
