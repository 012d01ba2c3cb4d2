-- A signed-in session names its user in a column of its own, not only inside its encoded data,
-- so that one query reads the session, its user and the features tab's generation: the guard
-- in front of every page needs all three, and three round trips were most of a kept page's
-- time. A user's deletion ends their sessions. Sessions saved before this column existed name
-- no one here; the guard looks their user up apart until their next save names them.
ALTER TABLE tower_sessions.session
    ADD COLUMN user_id bigint REFERENCES users (id) ON DELETE CASCADE;
CREATE INDEX session_user_id ON tower_sessions.session (user_id);
