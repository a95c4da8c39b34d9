-- Version 7: audio prices — transcription by the second of audio, speech by the character.

ALTER TABLE model_rates ADD COLUMN per_second_micros INTEGER;  -- micro-USD per second of audio
ALTER TABLE model_rates ADD COLUMN per_mchar_micros INTEGER;   -- micro-USD per million characters
