//! The OpenAPI 3.0 document of `/api/*`, served at `/api/openapi.json`. Written by hand, beside the
//! handlers it describes (`api.rs`); the schemathesis run in CI checks the server against it.

use serde_json::{json, Value};

fn param(name: &str, location: &str, required: bool, schema: Value, description: &str) -> Value {
    json!({
        "name": name,
        "in": location,
        "required": required,
        "schema": schema,
        "description": description,
    })
}

fn text_param(name: &str, description: &str) -> Value {
    param(name, "query", false, json!({"type": "string"}), description)
}

fn errors() -> Value {
    let e = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    json!({
        "400": e, "401": {"description": "no or unknown token"}, "404": e,
    })
}

fn merge(mut base: Value, extra: Value) -> Value {
    if let (Some(b), Some(e)) = (base.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    base
}

/// The document.
pub fn openapi_document() -> Value {
    let time_desc = "a date (YYYY-MM-DD, a whole day in the console's timezone), an RFC 3339 time, or Unix milliseconds";
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "wecom-archive console API",
            "version": "1",
            "description": "Read-only access to the WeCom session archive for language models and tools: conversations, transcripts (one line per message, media as object-key placeholders, incremental with an opaque cursor), and full-text search. Every request needs `Authorization: Bearer <token>` of a console user (role `api` or `reviewer`); every request is audited.",
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/status": {"get": {
                "summary": "Index status",
                "operationId": "status",
                "responses": merge(json!({"200": {"description": "status", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Status"}}}}}), errors()),
            }},
            "/api/conversations": {"get": {
                "summary": "Conversations, newest activity first",
                "operationId": "listConversations",
                "parameters": [
                    param("kind", "query", false, json!({"type": "string", "enum": ["all", "room", "single"]}), "rooms, 1:1 chats or both"),
                    text_param("q", "case-insensitive filter on title, id and participants"),
                    param("limit", "query", false, json!({"type": "integer", "minimum": 1, "maximum": 1000}), "default 100"),
                    param("offset", "query", false, json!({"type": "integer", "minimum": 0, "maximum": 1000000}), "default 0"),
                ],
                "responses": merge(json!({"200": {"description": "a page of conversations", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ConversationList"}}}}}), errors()),
            }},
            "/api/conversations/{id}/transcript": {"get": {
                "summary": "A conversation's transcript, in the order the archive recorded it",
                "description": "Pass `next_cursor` of one call as `since` of the next: no message is missed or repeated across calls, even while new messages arrive. A first call may give `since` as a time. `until` bounds the time of the messages returned.",
                "operationId": "transcript",
                "parameters": [
                    param("id", "path", true, json!({"type": "string"}), "conversation id (a room id, or single:<a>|<b>)"),
                    text_param("since", &format!("the previous call's next_cursor, or {time_desc}")),
                    text_param("until", &format!("exclusive end: {time_desc}")),
                    param("format", "query", false, json!({"type": "string", "enum": ["json", "markdown"]}), "default json"),
                    param("limit", "query", false, json!({"type": "integer", "minimum": 1, "maximum": 1000}), "messages per call, default 200"),
                ],
                "responses": merge(json!({
                    "200": {
                        "description": "messages; the cursor is also in the X-Next-Cursor header",
                        "headers": {
                            "X-Next-Cursor": {"schema": {"type": "string"}},
                            "X-Has-More": {"schema": {"type": "string", "enum": ["true", "false"]}},
                        },
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/Transcript"}},
                            "text/markdown": {"schema": {"type": "string"}},
                        },
                    },
                    "410": {"description": "the cursor belongs to an index that was rebuilt", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}},
                }), errors()),
            }},
            "/api/search": {"get": {
                "summary": "Full-text search, newest first",
                "description": "Terms separated by spaces must all match; \"quoted phrases\" keep spaces; -term excludes. Chinese matches any substring, other words whole words in any case. At least q or one filter is required.",
                "operationId": "search",
                "parameters": [
                    text_param("q", "the query"),
                    text_param("sender", "sender userid"),
                    text_param("conversation", "conversation id"),
                    text_param("room", "room id"),
                    text_param("from", &format!("inclusive start: {time_desc}")),
                    text_param("until", &format!("exclusive end: {time_desc}")),
                    {"name": "msgtype", "in": "query", "required": false, "style": "form", "explode": true, "schema": {"type": "array", "items": {"type": "string"}}, "description": "any of these msgtypes"},
                    param("has_media", "query", false, json!({"type": "boolean"}), "messages with (or without) media"),
                    param("external", "query", false, json!({"type": "boolean"}), "conversations with external contacts (or not)"),
                    param("limit", "query", false, json!({"type": "integer", "minimum": 1, "maximum": 200}), "default 50"),
                    text_param("before", "next_before of the previous page"),
                ],
                "responses": merge(json!({"200": {"description": "results", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/SearchResults"}}}}}), errors()),
            }},
            "/api/openapi.json": {"get": {
                "summary": "This document",
                "operationId": "openapi",
                "responses": {"200": {"description": "OpenAPI 3.0 document", "content": {"application/json": {"schema": {"type": "object"}}}}, "401": {"description": "no or unknown token"}},
            }},
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Error": {"type": "object", "required": ["error"], "properties": {"error": {"type": "string"}}},
                "Status": {"type": "object", "required": ["corp_id", "records", "conversations"], "properties": {
                    "corp_id": {"type": "string"}, "source": {"type": "string"},
                    "records": {"type": "integer"}, "conversations": {"type": "integer"},
                    "duplicates_skipped": {"type": "integer"}, "unreadable_lines": {"type": "integer"},
                    "last_commit": {"type": "string", "nullable": true}, "last_error": {"type": "string", "nullable": true},
                    "timezone": {"type": "string"},
                }},
                "Conversation": {"type": "object", "required": ["id", "kind", "title", "messages"], "properties": {
                    "id": {"type": "string"}, "kind": {"type": "string", "enum": ["room", "single", "other"]},
                    "title": {"type": "string"}, "name": {"type": "string", "nullable": true},
                    "member_count": {"type": "integer", "nullable": true},
                    "participants": {"type": "array", "items": {"type": "string"}},
                    "messages": {"type": "integer"}, "media_messages": {"type": "integer"}, "external": {"type": "boolean"},
                    "first_time": {"type": "string", "nullable": true}, "last_time": {"type": "string", "nullable": true},
                    "last_message": {"type": "object", "nullable": true},
                }},
                "ConversationList": {"type": "object", "required": ["total", "conversations"], "properties": {
                    "total": {"type": "integer"}, "offset": {"type": "integer"},
                    "conversations": {"type": "array", "items": {"$ref": "#/components/schemas/Conversation"}},
                }},
                "Message": {"type": "object", "required": ["msgid", "conversation_id", "speaker", "msgtype", "text"], "properties": {
                    "msgid": {"type": "string"}, "conversation_id": {"type": "string"}, "stream": {"type": "string"},
                    "seq": {"type": "integer"}, "time": {"type": "string", "nullable": true},
                    "speaker": {"type": "string"}, "msgtype": {"type": "string"},
                    "text": {"type": "string", "description": "one line; media as [marker](object_key)"},
                    "media": {"type": "array", "items": {"type": "object", "properties": {
                        "kind": {"type": "string"}, "object_key": {"type": "string", "nullable": true}, "size": {"type": "integer", "nullable": true}}}},
                    "external": {"type": "boolean"},
                    "recalls": {"type": "string", "description": "on a recall: the msgid it recalls"},
                    "recalled_by": {"type": "string", "description": "the recall's msgid when this message was recalled"},
                    "consent": {"type": "object"},
                }},
                "Transcript": {"type": "object", "required": ["conversation", "messages", "next_cursor", "has_more"], "properties": {
                    "conversation": {"$ref": "#/components/schemas/Conversation"},
                    "messages": {"type": "array", "items": {"$ref": "#/components/schemas/Message"}},
                    "next_cursor": {"type": "string"}, "has_more": {"type": "boolean"},
                }},
                "SearchResults": {"type": "object", "required": ["total", "results"], "properties": {
                    "total": {"type": "integer"},
                    "results": {"type": "array", "items": {"allOf": [{"$ref": "#/components/schemas/Message"}, {"type": "object", "properties": {
                        "full_text": {"type": "string"},
                        "highlights": {"type": "array", "items": {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 2}, "description": "[start, end) character offsets of hits in full_text"},
                    }}]}},
                    "next_before": {"type": "string", "nullable": true},
                }},
            },
        },
    })
}
