"""Who may call the API: the admin gate (:mod:`.admin`) and stream tokens (:mod:`.stream_tokens`)."""
