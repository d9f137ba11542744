/*
 * aws_xml.c - libxml2's tree walked into jansson (see aws_xml.h).
 *
 * The parse never touches the network or the file system (XML_PARSE_NONET,
 * no DTD loading), leaves entities unexpanded and refuses any document that
 * carries a DTD: an AWS answer has none, and a DTD is how entity bombs and
 * external entities come in.
 */
#include "aws_xml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <string.h>

#define XML_DEPTH_MAX 64

static int xml_add(json_t *obj, const char *name, json_t *child)
{
    json_t *old = json_object_get(obj, name);

    if (!old)
        return json_object_set_new(obj, name, child);
    if (json_is_array(old))
        return json_array_append_new(old, child);
    json_t *arr = json_array();
    if (!arr) {
        json_decref(child);
        return -1;
    }
    json_array_append(arr, old);
    json_array_append_new(arr, child);
    return json_object_set_new(obj, name, arr);
}

static json_t *xml_node(const xmlNode *n, int depth)
{
    json_t *obj = NULL;
    int leaf = 1;

    if (depth > XML_DEPTH_MAX)
        return NULL;
    for (const xmlNode *c = n->children; c; c = c->next) {
        if (c->type == XML_ENTITY_REF_NODE)
            return NULL;
        if (c->type == XML_ELEMENT_NODE)
            leaf = 0;
    }
    if (leaf) {
        xmlChar *t = xmlNodeGetContent(n);
        json_t *s = json_string(t ? (const char *)t : "");
        xmlFree(t);
        return s; /* NULL for text that is not UTF-8 */
    }
    if (!(obj = json_object()))
        return NULL;
    for (const xmlNode *c = n->children; c; c = c->next) {
        json_t *child;
        if (c->type != XML_ELEMENT_NODE)
            continue;
        child = xml_node(c, depth + 1);
        if (!child || xml_add(obj, (const char *)c->name, child) < 0) {
            json_decref(obj);
            return NULL;
        }
    }
    return obj;
}

json_t *aws_xml_to_json(const char *xml, size_t len)
{
    const int opts = XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING |
                     XML_PARSE_NOCDATA;
    xmlDoc *doc;
    xmlNode *root;
    json_t *out = NULL, *v;

    if (!xml || len == 0 || len > (size_t)0x7fffffff)
        return NULL;
    doc = xmlReadMemory(xml, (int)len, NULL, NULL, opts);
    if (!doc)
        return NULL;
    root = xmlDocGetRootElement(doc);
    if (root && !doc->intSubset && !doc->extSubset &&
        (v = xml_node(root, 1)) != NULL) {
        out = json_object();
        if (!out || json_object_set_new(out, (const char *)root->name, v) < 0) {
            json_decref(out);
            out = NULL;
        }
    }
    xmlFreeDoc(doc);
    return out;
}
