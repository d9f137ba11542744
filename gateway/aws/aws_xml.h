/*
 * aws_xml.h - a Query (STS, EC2) answer as JSON, read by libxml2: the one
 * home of libxml2 in the tree. Pure: bytes in, a JSON tree out.
 */
#ifndef SSMGATE_AWS_XML_H
#define SSMGATE_AWS_XML_H

#include <jansson.h>
#include <stddef.h>

/* Parses a small XML document into JSON {root name: value}: an element
 * with child elements becomes an object (a repeated child makes an
 * array), a leaf becomes its text. Returns NULL on malformed input, a
 * DTD (no entity of ours is ever declared), or more than 64 levels. */
json_t *aws_xml_to_json(const char *xml, size_t len);

#endif
