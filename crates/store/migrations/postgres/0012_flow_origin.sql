-- Where a sign-in's password was accepted from: an abandoned sign-in reports it to
-- the member ("someone may know your password").
ALTER TABLE login_flows ADD COLUMN client_ip TEXT;
