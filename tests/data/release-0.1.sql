BEGIN TRANSACTION;
CREATE TABLE audit (
	id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	actor VARCHAR(64) NOT NULL, 
	action VARCHAR(48) NOT NULL, 
	target VARCHAR(128) NOT NULL, 
	details JSON NOT NULL, 
	prev_hash VARCHAR(64) NOT NULL, 
	hash VARCHAR(64) NOT NULL, 
	PRIMARY KEY (id)
);
INSERT INTO "audit" VALUES(1,'2026-11-22 05:49:24.607051','cli','user.add','alice','{"role": "reviewer"}','0000000000000000000000000000000000000000000000000000000000000000','a6eafa6b6116ca66ea710f5f512f3f09c0dfa47140dd45beb5edb179c74c5b28');
INSERT INTO "audit" VALUES(2,'2026-11-22 05:49:24.738403','cli','user.add','sam','{"role": "supervisor"}','a6eafa6b6116ca66ea710f5f512f3f09c0dfa47140dd45beb5edb179c74c5b28','32d4b33ad297fffaf76edb9636b2c54cdfa726e571de4f8b3dc99764ffba3509');
INSERT INTO "audit" VALUES(3,'2026-11-22 05:49:24.742137','alice','pack.confirm','00000000-release-01-pack','{"reason": null, "note": "parked in the loading lane"}','32d4b33ad297fffaf76edb9636b2c54cdfa726e571de4f8b3dc99764ffba3509','cb1e447f6bf778d448f8c2c6be8f8d29a8bc284dd370a5b75118de58e4707bcd');
INSERT INTO "audit" VALUES(4,'2026-11-22 05:49:24.745100','alice','case.open','case:1','{"pack_id": "00000000-release-01-pack"}','cb1e447f6bf778d448f8c2c6be8f8d29a8bc284dd370a5b75118de58e4707bcd','f43c57a62f7a521fe6dd49f00a8859ea25d5224497d3b4af545b8bd7e0626958');
INSERT INTO "audit" VALUES(5,'2026-11-22 05:49:24.745749','alice','case.attach','case:1','{"pack_id": "00000000-release-01-pack"}','f43c57a62f7a521fe6dd49f00a8859ea25d5224497d3b4af545b8bd7e0626958','61190d707255deeb13b19fc031ce48138bb97a8d6ca84179e0eb269ba3203fec');
INSERT INTO "audit" VALUES(6,'2026-11-22 05:49:24.748316','alice','pack.reject','00000001-release-01-pack','{"reason": "false_detection", "note": ""}','61190d707255deeb13b19fc031ce48138bb97a8d6ca84179e0eb269ba3203fec','6b2b17879a082edfc8ef024c50b8adfcc87299693c6c29cab72127e51d18a9df');
INSERT INTO "audit" VALUES(7,'2026-11-22 05:49:24.754694','alice','case.notified','case:1','{"from": "open", "note": "notice handed over", "notice_kind": "warning"}','6b2b17879a082edfc8ef024c50b8adfcc87299693c6c29cab72127e51d18a9df','7e3179ad84e4bdb5919ba6212393dd042f83ad94a9475295579c74a54d463b0b');
CREATE TABLE case_events (
	id INTEGER NOT NULL, 
	case_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	user_id INTEGER NOT NULL, 
	from_state VARCHAR(24), 
	to_state VARCHAR(24) NOT NULL, 
	note TEXT NOT NULL, 
	details JSON NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(case_id) REFERENCES cases (id), 
	FOREIGN KEY(user_id) REFERENCES users (id)
);
INSERT INTO "case_events" VALUES(1,1,'2026-11-22 05:49:24.744434',1,NULL,'open','opened from pack 00000000-release-01-pack','{}');
INSERT INTO "case_events" VALUES(2,1,'2026-11-22 05:49:24.754145',1,'open','notified','notice handed over','{"notice_kind": "warning"}');
CREATE TABLE case_packs (
	pack_id VARCHAR(64) NOT NULL, 
	case_id INTEGER NOT NULL, 
	PRIMARY KEY (pack_id), 
	FOREIGN KEY(case_id) REFERENCES cases (id)
);
INSERT INTO "case_packs" VALUES('00000000-release-01-pack',1);
CREATE TABLE cases (
	id INTEGER NOT NULL, 
	subject_key VARCHAR(256) NOT NULL, 
	category VARCHAR(48) NOT NULL, 
	source_id VARCHAR(128) NOT NULL, 
	place VARCHAR(256) NOT NULL, 
	state VARCHAR(24) NOT NULL, 
	notice_kind VARCHAR(16), 
	deadline DATETIME, 
	outcome VARCHAR(16), 
	assignee_id INTEGER, 
	created_at DATETIME NOT NULL, 
	updated_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	FOREIGN KEY(assignee_id) REFERENCES users (id)
);
INSERT INTO "cases" VALUES(1,'vehicle:cam-carpark-01:loading-lane:0,7','illegal_parking','cam-carpark-01','loading-lane','notified','warning',NULL,NULL,1,'2026-11-22 05:49:24.743835','2026-11-22 05:49:24.753245');
CREATE TABLE decisions (
	pack_id VARCHAR(64) NOT NULL, 
	decision VARCHAR(16) NOT NULL, 
	reason VARCHAR(32), 
	note TEXT, 
	user_id INTEGER NOT NULL, 
	at DATETIME NOT NULL, 
	PRIMARY KEY (pack_id), 
	FOREIGN KEY(user_id) REFERENCES users (id)
);
INSERT INTO "decisions" VALUES('00000000-release-01-pack','confirm',NULL,'parked in the loading lane',1,'2026-11-22 05:49:24.741272');
INSERT INTO "decisions" VALUES('00000001-release-01-pack','reject','false_detection','',1,'2026-11-22 05:49:24.747935');
CREATE TABLE login_attempts (
	id INTEGER NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	ip VARCHAR(64) NOT NULL, 
	at DATETIME NOT NULL, 
	ok BOOLEAN NOT NULL, 
	PRIMARY KEY (id)
);
CREATE TABLE packs (
	pack_id VARCHAR(64) NOT NULL, 
	category VARCHAR(48) NOT NULL, 
	source_id VARCHAR(128) NOT NULL, 
	rule_id VARCHAR(128) NOT NULL, 
	zone_id VARCHAR(128) NOT NULL, 
	shop_name VARCHAR(256), 
	subject_key VARCHAR(256) NOT NULL, 
	first_seen DATETIME NOT NULL, 
	threshold_at DATETIME NOT NULL, 
	last_seen DATETIME NOT NULL, 
	dwell_s FLOAT NOT NULL, 
	confidence FLOAT NOT NULL, 
	manifest_sha256 VARCHAR(64) NOT NULL, 
	status VARCHAR(32) NOT NULL, 
	indexed_at DATETIME NOT NULL, 
	purged VARCHAR(16), 
	PRIMARY KEY (pack_id)
);
INSERT INTO "packs" VALUES('00000000-release-01-pack','illegal_parking','cam-carpark-01','loading-lane-no-parking','loading-lane',NULL,'vehicle:cam-carpark-01:loading-lane:0,7','2026-11-20 08:55:00.000000','2026-11-20 09:00:00.000000','2026-11-20 09:01:00.000000',360.0,0.81,'94d71352ee31f4d8ab4a28f486ba12aaafd9a0ff67353e17986e76785312daf5','confirmed','2026-11-20 09:00:00.000000',NULL);
INSERT INTO "packs" VALUES('00000001-release-01-pack','illegal_parking','cam-carpark-01','loading-lane-no-parking','loading-lane',NULL,'vehicle:cam-carpark-01:loading-lane:1,7','2026-11-20 09:05:00.000000','2026-11-20 09:10:00.000000','2026-11-20 09:11:00.000000',360.0,0.81,'eee2c84da7b18998bfd0623c0cebc39d7a8dc2066cad1b05df52142a0be1d62b','rejected','2026-11-20 09:10:00.000000',NULL);
INSERT INTO "packs" VALUES('00000002-release-01-pack','illegal_parking','cam-carpark-01','loading-lane-no-parking','loading-lane',NULL,'vehicle:cam-carpark-01:loading-lane:2,7','2026-11-20 09:15:00.000000','2026-11-20 09:20:00.000000','2026-11-20 09:21:00.000000',360.0,0.81,'a957665ebd43060c09118e4a0f6131710fc38b2bf8b2516cbb09171e9d77c574','pending_review','2026-11-20 09:20:00.000000',NULL);
CREATE TABLE sessions (
	token_sha256 VARCHAR(64) NOT NULL, 
	user_id INTEGER NOT NULL, 
	csrf VARCHAR(64) NOT NULL, 
	expires_at DATETIME NOT NULL, 
	PRIMARY KEY (token_sha256), 
	FOREIGN KEY(user_id) REFERENCES users (id)
);
CREATE TABLE users (
	id INTEGER NOT NULL, 
	username VARCHAR(64) NOT NULL, 
	password_hash VARCHAR(256) NOT NULL, 
	role VARCHAR(16) NOT NULL, 
	active BOOLEAN NOT NULL, 
	created_at DATETIME NOT NULL, 
	PRIMARY KEY (id), 
	UNIQUE (username)
);
INSERT INTO "users" VALUES(1,'alice','$argon2id$v=19$m=65536,t=3,p=4$vKk/IjmQ3keHBF4o+n43IA$n1cbInmrfCiaDyMuGNJoy0KU1Vf9c/1F9x69q7fvQAM','reviewer',1,'2026-11-22 05:49:24.604634');
INSERT INTO "users" VALUES(2,'sam','$argon2id$v=19$m=65536,t=3,p=4$GPDErWdCIXxAPkaVgEBOow$Pe06KvBhaUUwl3ZKRE37rrA2tOQi1ZUFRatiYYdE27M','supervisor',1,'2026-11-22 05:49:24.737187');
CREATE INDEX ix_packs_status ON packs (status);
CREATE INDEX ix_packs_category ON packs (category);
CREATE INDEX ix_packs_source_id ON packs (source_id);
CREATE INDEX ix_packs_threshold_at ON packs (threshold_at);
CREATE INDEX ix_packs_subject_key ON packs (subject_key);
CREATE INDEX ix_login_attempts_ip ON login_attempts (ip);
CREATE INDEX ix_login_attempts_username ON login_attempts (username);
CREATE INDEX ix_audit_actor ON audit (actor);
CREATE INDEX ix_audit_action ON audit (action);
CREATE INDEX ix_audit_target ON audit (target);
CREATE INDEX ix_cases_state ON cases (state);
CREATE INDEX ix_cases_subject_key ON cases (subject_key);
CREATE INDEX ix_case_packs_case_id ON case_packs (case_id);
CREATE INDEX ix_case_events_case_id ON case_events (case_id);
COMMIT;
